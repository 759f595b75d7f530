// docker_engine against a scripted fake engine on a unix socket: the wire
// cases Podman cannot be made to produce here (a successful pull's progress,
// an error in the middle of a pull, Docker's own error statuses, a stream cut
// short, lines split across chunks).
#include "engine/docker_engine.hpp"
#include "podman_harness.hpp"

#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using registry::errc;
using registry::task;
namespace rt = registry_test;

// What the fake writes on one connection: pieces, each after a pause.
struct piece {
    std::string bytes;
    std::chrono::milliseconds pause{0};
};
using script = std::vector<piece>;

std::string chunk(const std::string& s) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", s.size());
    return size + s + "\r\n";
}

const std::string chunked_200 =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
const std::string last_chunk = "0\r\n\r\n";

std::string json_response(int status, const std::string& reason, const std::string& body) {
    return "HTTP/1.1 " + std::to_string(status) + " " + reason +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Serves one script per connection, in order, then stops accepting.
class fake_engine {
public:
    explicit fake_engine(std::vector<script> scripts) : scripts_(std::move(scripts)) {
        char tmpl[] = "/tmp/rcf-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        path_ = dir_ + "/engine.sock";
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 8) != 0) {
            throw std::runtime_error("bind/listen failed");
        }
        thread_ = std::thread([this] { serve(); });
    }
    ~fake_engine() {
        ::shutdown(fd_, SHUT_RDWR);
        thread_.join();
        ::close(fd_);
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    std::string uri() const { return "unix://" + path_; }

    std::vector<std::string> request_lines() {
        std::lock_guard lock(mutex_);
        return requests_;
    }

private:
    void serve() {
        for (const auto& s : scripts_) {
            const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) return;
            std::string head;
            char buf[4096];
            while (head.find("\r\n\r\n") == std::string::npos) {
                const ssize_t n = ::read(c, buf, sizeof buf);
                if (n <= 0) break;
                head.append(buf, static_cast<std::size_t>(n));
            }
            {
                std::lock_guard lock(mutex_);
                requests_.push_back(head.substr(0, head.find("\r\n")));
            }
            for (const auto& p : s) {
                std::this_thread::sleep_for(p.pause);
                if (::send(c, p.bytes.data(), p.bytes.size(), MSG_NOSIGNAL) < 0) break;
            }
            ::shutdown(c, SHUT_WR);
            while (::read(c, buf, sizeof buf) > 0) {
            }
            ::close(c);
        }
    }

    std::vector<script> scripts_;
    std::string dir_;
    std::string path_;
    int fd_ = -1;
    std::thread thread_;
    std::mutex mutex_;
    std::vector<std::string> requests_;
};

registryd::engine_endpoint endpoint_of(const std::string& uri) {
    auto r = registryd::engine_endpoint::parse(uri);
    REQUIRE(r.ok());
    return *r;
}

task<std::vector<registry::result<registry::pull_progress>>> drain(registryd::docker_engine& engine,
                                                                   std::string reference) {
    std::vector<registry::result<registry::pull_progress>> items;
    auto pull = co_await engine.pull_image(std::move(reference));
    REQUIRE_MESSAGE(pull.ok(), pull.err().message);
    for (auto it = co_await pull->begin(); it != pull->end(); co_await ++it) items.push_back(*it);
    co_return items;
}

}  // namespace

TEST_CASE("fake engine: a successful pull's progress, with lines split across chunks") {
    const std::string l1 = R"({"status":"Pulling from library/app","id":"1.2"})" "\r\n";
    const std::string l2 =
        R"({"status":"Downloading","progressDetail":{"current":100,"total":1000},"progress":"[=>   ]","id":"abc"})" "\r\n";
    const std::string l3 = R"({"status":"Download complete","progressDetail":{},"id":"abc"})" "\r\n";
    const std::string l4 = R"({"status":"Status: Downloaded newer image for app:1.2"})";  // no final newline
    fake_engine fake({{
        {chunked_200, 0ms},
        {chunk(l1 + l2.substr(0, 30)), 0ms},
        {chunk(l2.substr(30)), 50ms},
        {chunk(l3) + chunk(l4), 50ms},
        {last_chunk, 0ms},
    }});
    boost::asio::io_context io;
    registryd::docker_engine engine(io, endpoint_of(fake.uri()));
    auto items = rt::run(io, drain(engine, "registry.example/library/app:1.2"));
    REQUIRE(items.size() == 4);
    for (const auto& i : items) REQUIRE(i.ok());
    CHECK(items[0]->status == "Pulling from library/app");
    CHECK(items[1]->status == "Downloading");
    CHECK(items[1]->id == "abc");
    CHECK(items[1]->current == std::optional<std::uint64_t>(100));
    CHECK(items[1]->total == std::optional<std::uint64_t>(1000));
    CHECK(items[1]->progress == "[=>   ]");
    CHECK_FALSE(items[2]->total);
    CHECK(items[3]->status == "Status: Downloaded newer image for app:1.2");
    const auto lines = fake.request_lines();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == "POST /v1.41/images/create?fromImage=registry.example%2Flibrary%2Fapp&tag=1.2 HTTP/1.1");
}

TEST_CASE("fake engine: an error in the middle of a pull ends the stream with it") {
    fake_engine fake({{
        {chunked_200, 0ms},
        {chunk(R"({"status":"Pulling fs layer","id":"abc"})" "\n"), 0ms},
        {chunk(R"({"errorDetail":{"message":"manifest unknown: manifest unknown"},"error":"manifest unknown: manifest unknown"})" "\n"), 20ms},
        {chunk(R"({"status":"never seen"})" "\n"), 0ms},
        {last_chunk, 0ms},
    }});
    boost::asio::io_context io;
    registryd::docker_engine engine(io, endpoint_of(fake.uri()));
    auto items = rt::run(io, drain(engine, "app"));
    REQUIRE(items.size() == 2);
    CHECK(items[0].ok());
    REQUIRE_FALSE(items[1].ok());
    CHECK(items[1].err().code == errc::not_found);
    CHECK(items[1].err().message == "pull app: manifest unknown: manifest unknown");
    CHECK(fake.request_lines().at(0) == "POST /v1.41/images/create?fromImage=app&tag=latest HTTP/1.1");
}

TEST_CASE("fake engine: Docker's statuses map to error codes with the engine's message") {
    fake_engine fake({
        {{json_response(409, "Conflict", R"({"message":"Conflict. The container name \"/web\" is already in use"})"), 0ms}},
        {{json_response(500, "Internal Server Error", R"({"message":"driver failed"})"), 0ms}},
        {{json_response(400, "Bad Request", R"({"message":"invalid reference format"})"), 0ms}},
        {{json_response(304, "Not Modified", ""), 0ms}},
        {{"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 7\r\n\r\nno json", 0ms}},
    });
    boost::asio::io_context io;
    registryd::docker_engine engine(io, endpoint_of(fake.uri()));
    rt::run(io, [&]() -> task<void> {
        registry::container_spec s;
        s.image = "app";
        s.name = "web";
        auto clash = co_await engine.create(s);
        REQUIRE_FALSE(clash.ok());
        CHECK(clash.err().code == errc::conflict);
        CHECK(clash.err().message == "create container web: Conflict. The container name \"/web\" is already in use");
        auto broken = co_await engine.start("abc");
        REQUIRE_FALSE(broken.ok());
        CHECK(broken.err().code == errc::internal);
        CHECK(broken.err().message == "start abc: driver failed");
        auto bad = co_await engine.inspect("abc");
        REQUIRE_FALSE(bad.ok());
        CHECK(bad.err().code == errc::invalid_request);
        auto already = co_await engine.stop("abc", 1s);
        CHECK(already.ok());
        auto gateway = co_await engine.remove("abc", true);
        REQUIRE_FALSE(gateway.ok());
        CHECK(gateway.err().code == errc::internal);
        CHECK(gateway.err().message == "remove abc: no json");
    }());
}

TEST_CASE("fake engine: a 2xx answer that is not the JSON expected is an internal error naming the call") {
    const std::string why = ": unexpected reply from the container engine: ";
    fake_engine fake({
        {{json_response(200, "OK", "[1,2]"), 0ms}},
        {{json_response(201, "Created", R"({"Warnings":[]})"), 0ms}},
        {{json_response(200, "OK", "not json"), 0ms}},
        {{json_response(200, "OK", R"({"a":1})"), 0ms}},
        {{json_response(200, "OK", R"({"StatusCode":"7"})"), 0ms}},
        {{json_response(200, "OK", R"({"StatusCode":1,"Error":{"Message":"oops"}})"), 0ms}},
        {{json_response(500, "Internal Server Error",
                        R"({"cause":"no such container","message":"no container with name or ID \"abc\" found: no such container","response":500})"),
          0ms}},
        // Members of unexpected types read as absent; any number is a number.
        {{json_response(200, "OK",
                        R"({"Id":"abc","Name":"/web","Config":{"Cmd":["sh",1],"Labels":{"a":"b","n":2}},)"
                        R"("State":{"Status":"running","Running":true,"ExitCode":"7"},)"
                        R"("HostConfig":{"Memory":1.5e9,"NanoCpus":500000000,"PidsLimit":-1}})"),
          0ms}},
        {{chunked_200 + chunk("not json\n") + last_chunk, 0ms}},
    });
    boost::asio::io_context io;
    registryd::docker_engine engine(io, endpoint_of(fake.uri()));
    rt::run(io, [&]() -> task<void> {
        auto version = co_await engine.version();
        REQUIRE_FALSE(version.ok());
        CHECK(version.err().code == errc::internal);
        CHECK(version.err().message == "version" + why + "not a JSON object");
        registry::container_spec s;
        s.image = "app";
        auto created = co_await engine.create(s);
        REQUIRE_FALSE(created.ok());
        CHECK(created.err().code == errc::internal);
        CHECK(created.err().message == "create container" + why + "no Id");
        auto inspected = co_await engine.inspect("abc");
        REQUIRE_FALSE(inspected.ok());
        CHECK(inspected.err().code == errc::internal);
        CHECK(inspected.err().message == "inspect abc" + why + "not a JSON object");
        auto listed = co_await engine.list({});
        REQUIRE_FALSE(listed.ok());
        CHECK(listed.err().code == errc::internal);
        CHECK(listed.err().message == "list containers" + why + "not a JSON array");
        auto no_code = co_await engine.wait("abc");
        REQUIRE_FALSE(no_code.ok());
        CHECK(no_code.err().code == errc::internal);
        CHECK(no_code.err().message == "wait abc" + why + "no StatusCode");
        auto wait_error = co_await engine.wait("abc");
        REQUIRE_FALSE(wait_error.ok());
        CHECK(wait_error.err().code == errc::internal);
        CHECK(wait_error.err().message == "wait abc: oops");
        auto podman = co_await engine.start("abc");
        REQUIRE_FALSE(podman.ok());
        CHECK(podman.err().code == errc::not_found);
        CHECK(podman.err().message == "start abc: no container with name or ID \"abc\" found: no such container");
        auto lenient = co_await engine.inspect("abc");
        REQUIRE_MESSAGE(lenient.ok(), lenient.err().message);
        CHECK(lenient->id == "abc");
        CHECK(lenient->name == "web");
        CHECK(lenient->command == std::vector<std::string>{"sh"});
        CHECK(lenient->labels == std::map<std::string, std::string>{{"a", "b"}});
        CHECK(lenient->state.status == registry::container_status::running);
        CHECK(lenient->state.running);
        CHECK(lenient->state.exit_code == 0);
        CHECK(lenient->limits.memory_bytes == 1'500'000'000u);
        CHECK(lenient->limits.cpus == 0.5);
        CHECK_FALSE(lenient->limits.pids);
        auto items = co_await drain(engine, "busybox");
        REQUIRE(items.size() == 1);
        REQUIRE_FALSE(items[0].ok());
        CHECK(items[0].err().code == errc::internal);
        CHECK(items[0].err().message == "pull busybox: unparsable progress line from the container engine: not json");
    }());
}

TEST_CASE("fake engine: framed output across chunks, and a log stream cut short ends with unavailable") {
    auto frame = [](char stream, const std::string& payload) {
        std::string h(8, '\0');
        h[0] = stream;
        h[7] = static_cast<char>(payload.size());
        return h + payload;
    };
    const std::string wire = frame(1, "hello\n") + frame(2, "oops\n");
    fake_engine fake({
        // GET /containers/x/json (the follow's existence check), then the follow.
        {{json_response(200, "OK", R"({"Id":"x"})"), 0ms}},
        {{"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nTransfer-Encoding: chunked\r\n\r\n", 0ms},
         {chunk(wire.substr(0, 3)), 0ms},
         {chunk(wire.substr(3, 15)), 20ms},
         {chunk(wire.substr(18)), 20ms}},  // no last chunk: the connection just closes
    });
    boost::asio::io_context io;
    registryd::docker_engine engine(io, endpoint_of(fake.uri()));
    rt::run(io, [&]() -> task<void> {
        registry::log_options follow;
        follow.follow = true;
        follow.tail = 10;
        auto logs = co_await engine.logs("x", follow);
        REQUIRE_MESSAGE(logs.ok(), logs.err().message);
        std::string out, err;
        std::optional<registry::error> failure;
        for (auto it = co_await logs->begin(); it != logs->end(); co_await ++it) {
            if (!(*it).ok()) {
                failure = (*it).err();
                continue;
            }
            ((*it)->stream == registry::output_stream::err ? err : out) += (*it)->bytes;
        }
        CHECK(out == "hello\n");
        CHECK(err == "oops\n");
        REQUIRE(failure);
        CHECK(failure->code == errc::unavailable);
        CHECK(failure->message.find(fake.uri()) != std::string::npos);
    }());
    const auto lines = fake.request_lines();
    REQUIRE(lines.size() == 2);
    CHECK(lines[0] == "GET /v1.41/containers/x/json HTTP/1.1");
    CHECK(lines[1] == "GET /v1.41/containers/x/logs?stdout=1&stderr=1&follow=1&tail=10 HTTP/1.1");
}

TEST_CASE("fake engine: a ping the engine accepts but never answers fails at the ping timeout") {
    // The heartbeat relies on this to take a hung engine offline.
    fake_engine fake({{{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK", 4000ms}}});
    boost::asio::io_context io;
    registryd::docker_engine_options options;
    options.ping_timeout = 200ms;
    registryd::docker_engine engine(io, endpoint_of(fake.uri()), options);
    rt::run(io, [&]() -> task<void> {
        const auto started = std::chrono::steady_clock::now();
        auto pinged = co_await engine.ping();
        const auto took = std::chrono::steady_clock::now() - started;
        REQUIRE_FALSE(pinged.ok());
        CHECK(pinged.err().code == errc::unavailable);
        CHECK(took < 3000ms);  // the answer would have come after 4 s
    }());
}
