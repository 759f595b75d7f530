// The Docker wire format pieces and the tar builder, without an engine.
#include "engine/docker_engine.hpp"
#include "engine/engine_http.hpp"
#include "deploy/tar_builder.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

using registry::output_stream;
using registryd::docker::frame_demuxer;
using registryd::docker::line_splitter;

namespace {

std::string frame(unsigned char stream, const std::string& payload) {
    std::string h(8, '\0');
    h[0] = static_cast<char>(stream);
    const auto n = static_cast<std::uint32_t>(payload.size());
    h[4] = static_cast<char>(n >> 24);
    h[5] = static_cast<char>(n >> 16);
    h[6] = static_cast<char>(n >> 8);
    h[7] = static_cast<char>(n);
    return h + payload;
}

struct demuxed {
    std::string out, err;
    std::size_t chunks = 0;
};

demuxed drain(frame_demuxer& d, bool at_end = false) {
    demuxed r;
    for (;;) {
        auto c = at_end ? d.finish() : d.next();
        if (!c) break;
        ++r.chunks;
        (c->stream == output_stream::err ? r.err : r.out) += c->bytes;
    }
    return r;
}

}  // namespace

TEST_CASE("frame_demuxer splits stdout and stderr frames, fed byte by byte") {
    const std::string wire = frame(1, "out1\n") + frame(2, "err1\n") + frame(1, "") + frame(1, "out2\n");
    frame_demuxer d;
    demuxed all;
    for (char c : wire) {
        d.feed(std::string_view(&c, 1));
        auto r = drain(d);
        all.out += r.out;
        all.err += r.err;
    }
    CHECK(all.out == "out1\nout2\n");
    CHECK(all.err == "err1\n");
    CHECK_FALSE(d.corrupt());
}

TEST_CASE("frame_demuxer hands out a large frame as it arrives") {
    const std::string payload(100'000, 'x');
    const std::string wire = frame(2, payload);
    frame_demuxer d;
    d.feed(std::string_view(wire).substr(0, 50'000));
    auto first = drain(d);
    CHECK(first.err.size() == 50'000 - 8);
    d.feed(std::string_view(wire).substr(50'000));
    auto second = drain(d);
    CHECK(first.err + second.err == payload);
}

TEST_CASE("frame_demuxer passes a TTY's raw stream through as stdout") {
    frame_demuxer d;
    d.feed("hello from a tty\n");
    auto r = drain(d);
    CHECK(r.out == "hello from a tty\n");
    frame_demuxer short_stream;
    short_stream.feed(std::string("\x01", 1));  // could be a header: wait
    CHECK(drain(short_stream).chunks == 0);
    CHECK(drain(short_stream, true).out == std::string("\x01", 1));
}

TEST_CASE("frame_demuxer flags a corrupt header in a framed stream") {
    frame_demuxer d;
    d.feed(frame(1, "ok\n") + "garbage!");
    auto r = drain(d);
    CHECK(r.out == "ok\n");
    CHECK(d.corrupt());
}

TEST_CASE("line_splitter joins lines across pieces") {
    line_splitter l;
    l.feed("{\"a\":1}\r\n{\"b\"");
    CHECK(l.next() == std::optional<std::string>("{\"a\":1}"));
    CHECK_FALSE(l.next());
    l.feed(":2}\n{\"c\":3}");
    CHECK(l.next() == std::optional<std::string>("{\"b\":2}"));
    CHECK_FALSE(l.next());
    CHECK(l.finish() == std::optional<std::string>("{\"c\":3}"));
    CHECK_FALSE(l.finish());
}

TEST_CASE("parse_time reads RFC 3339 at millisecond precision") {
    using namespace std::chrono;
    const auto t = registryd::docker::parse_time("2026-11-23T10:15:18.159985815Z");
    REQUIRE(t);
    CHECK(t->time_since_epoch() == (sys_days{2026y / 11 / 23} + 10h + 15min + 18s + 159ms).time_since_epoch());
    const auto off = registryd::docker::parse_time("2026-11-23T11:15:18+01:00");
    REQUIRE(off);
    CHECK(*off == time_point_cast<milliseconds>(sys_days{2026y / 11 / 23} + 10h + 15min + 18s));
    CHECK_FALSE(registryd::docker::parse_time("0001-01-01T00:00:00Z"));
    CHECK_FALSE(registryd::docker::parse_time("yesterday"));
    CHECK_FALSE(registryd::docker::parse_time(""));
}

TEST_CASE("split_reference and url_encode") {
    using registryd::docker::split_reference;
    CHECK(split_reference("busybox") == std::pair<std::string, std::string>{"busybox", "latest"});
    CHECK(split_reference("a/b:1.2") == std::pair<std::string, std::string>{"a/b", "1.2"});
    CHECK(split_reference("host:5000/a") == std::pair<std::string, std::string>{"host:5000/a", "latest"});
    CHECK(split_reference("host:5000/a:v1") == std::pair<std::string, std::string>{"host:5000/a", "v1"});
    CHECK(split_reference("a@sha256:abc") == std::pair<std::string, std::string>{"a@sha256:abc", ""});
    CHECK(registryd::docker::url_encode("{\"label\":[\"a=b\"]}") == "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D");
    CHECK(registryd::docker::url_encode("/tmp/x y") == "%2Ftmp%2Fx%20y");
}

TEST_CASE("engine_endpoint parses unix and tcp addresses") {
    using registryd::engine_endpoint;
    auto u = engine_endpoint::parse("unix:///run/podman/podman.sock");
    REQUIRE(u.ok());
    CHECK(u->type == engine_endpoint::kind::unix_socket);
    CHECK(u->path == "/run/podman/podman.sock");
    CHECK(u->uri() == "unix:///run/podman/podman.sock");
    auto p = engine_endpoint::parse("/var/run/docker.sock");
    REQUIRE(p.ok());
    CHECK(p->path == "/var/run/docker.sock");
    auto t = engine_endpoint::parse("tcp://127.0.0.1:2375");
    REQUIRE(t.ok());
    CHECK(t->type == engine_endpoint::kind::tcp);
    CHECK(t->host == "127.0.0.1");
    CHECK(t->port == 2375);
    auto v6 = engine_endpoint::parse("tcp://[::1]:2375");
    REQUIRE(v6.ok());
    CHECK(v6->host == "::1");
    CHECK(v6->uri() == "tcp://[::1]:2375");
    CHECK_FALSE(engine_endpoint::parse("tcp://host").ok());
    CHECK_FALSE(engine_endpoint::parse("tcp://host:0").ok());
    CHECK_FALSE(engine_endpoint::parse("unix://relative.sock").ok());
    CHECK_FALSE(engine_endpoint::parse("ftp://x:1").ok());
    CHECK(engine_endpoint::parse("ftp://x:1").err().code == registry::errc::invalid_request);
}

TEST_CASE("tar_builder writes files with modes and parent directories") {
    registryd::tar_builder b;
    b.add_file("hello.txt", "hello\n", 0644);
    b.add_file("conf/app/run.sh", "#!/bin/sh\necho ran\n", 0755);
    b.add_file("conf/empty", "", 0600);
    const std::string tar = b.finish();
    CHECK(tar.size() % 512 == 0);

    struct archive* a = archive_read_new();
    archive_read_support_format_tar(a);
    REQUIRE(archive_read_open_memory(a, tar.data(), tar.size()) == ARCHIVE_OK);
    std::map<std::string, std::pair<unsigned, std::string>> entries;
    struct archive_entry* e = nullptr;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        std::string contents(static_cast<std::size_t>(archive_entry_size(e)), '\0');
        if (!contents.empty()) archive_read_data(a, contents.data(), contents.size());
        entries[archive_entry_pathname(e)] = {static_cast<unsigned>(archive_entry_mode(e)), contents};
        CHECK(archive_entry_uid(e) == 0);
    }
    archive_read_free(a);
    REQUIRE(entries.size() == 5);
    CHECK(entries["conf/"].first == (AE_IFDIR | 0755));
    CHECK(entries["conf/app/"].first == (AE_IFDIR | 0755));
    CHECK(entries["hello.txt"] == std::pair<unsigned, std::string>{AE_IFREG | 0644, "hello\n"});
    CHECK(entries["conf/app/run.sh"] == std::pair<unsigned, std::string>{AE_IFREG | 0755, "#!/bin/sh\necho ran\n"});
    CHECK(entries["conf/empty"] == std::pair<unsigned, std::string>{AE_IFREG | 0600, ""});
}

TEST_CASE("tar_builder rejects paths that escape the destination") {
    registryd::tar_builder b;
    CHECK_THROWS_AS(b.add_file("/etc/passwd", "x"), std::invalid_argument);
    CHECK_THROWS_AS(b.add_file("a/../../x", "x"), std::invalid_argument);
    CHECK_THROWS_AS(b.add_file("", "x"), std::invalid_argument);
    CHECK_THROWS_AS(b.add_file("./", "x"), std::invalid_argument);
}
