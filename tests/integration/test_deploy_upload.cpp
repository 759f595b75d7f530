// Packages uploaded over the real WebSocket in chunks (package_upload_begin /
// package_upload_chunk, sha256 checked by registryd), deployed on the local
// target, and deployments that survive a registryd restart; the allow-list of
// deploy_package's path form.
#include "deploy_support.hpp"

#include <doctest/doctest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

using it::dump;
using it::num;
using it::str;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = it::json;
namespace dep = it::deploy;

namespace {

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string sha256_hex(const std::string& data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 0xf];
    }
    return out;
}

std::string base64(std::string_view in) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < in.size(); i += 3) {
        const std::size_t n = std::min<std::size_t>(3, in.size() - i);
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < 3; ++k) v = (v << 8) | (k < n ? static_cast<unsigned char>(in[i + k]) : 0u);
        for (std::size_t k = 0; k < 4; ++k) out += k <= n ? alphabet[(v >> (18 - 6 * k)) & 63] : '=';
    }
    return out;
}

constexpr std::size_t chunk_bytes = 512;

// A registryd installing under work/opt, with small chunks so that a package
// takes several, and archives allowed from work/archives.
struct upload_fixture {
    it::temp_dir work{"registryd-upload"};
    fs::path prefix = work.path() / "opt";
    it::registryd d{"deploy:\n" + dep::run_as_yaml(work.path()) +
                    "  prefix: " + (work.path() / "opt").string() + "\n  package_dirs: [" +
                    (work.path() / "archives").string() + "]\n  script_timeout_seconds: 20\n  upload_chunk_bytes: " +
                    std::to_string(chunk_bytes) + "\n"};

    ~upload_fixture() { dep::kill_package_servers(prefix); }
};

json::value send_chunk(it::ws_client& c, const std::string& upload_id, std::size_t offset, std::string_view bytes,
                       std::string* request_id = nullptr) {
    const std::string id = c.send_request("package_upload_chunk", json::object{{"upload_id", upload_id},
                                                                               {"offset", offset},
                                                                               {"data", base64(bytes)}});
    if (request_id) *request_id = id;
    return c.wait_response(id, it::scaled(10s));
}

std::string begin_upload(it::ws_client& c, std::size_t size, const std::string& sha256) {
    const json::value begun = c.call("package_upload_begin", json::object{{"size", size}, {"sha256", sha256}});
    CHECK(num(begun, "/size") == static_cast<std::int64_t>(size));
    CHECK(num(begun, "/received") == 0);
    CHECK(num(begun, "/max_chunk_bytes") == static_cast<std::int64_t>(chunk_bytes));
    return str(begun, "/upload_id");
}

bool directory_empty(const fs::path& p) { return !fs::exists(p) || fs::is_empty(p); }

}  // namespace

TEST_CASE("deploy upload: a package uploaded in chunks is deployed, and still controlled after registryd is killed and restarted") {
    upload_fixture f;
    IT_DIAGNOSE(f.d);
    const std::uint16_t port = dep::free_port();
    dep::package_options o;
    o.count_checks = true;  // the periodic checks after the restart are seen in run/checks
    o.port = port;
    const std::string archive = read_file(dep::build_package(f.work.path(), o));
    REQUIRE(archive.size() > 2 * chunk_bytes);  // several chunks
    const fs::path uploads = f.d.data_dir() / "deploy" / "uploads";

    it::ws_client client(f.d);
    const std::string upload_id = begin_upload(client, archive.size(), sha256_hex(archive));

    // The first chunk; then one at a wrong offset, refused without harm.
    std::string chunk_request;
    json::value r = send_chunk(client, upload_id, 0, std::string_view(archive).substr(0, chunk_bytes), &chunk_request);
    INFO(dump(r));
    REQUIRE(it::error_code(r).empty());
    CHECK(num(r, "/data/received") == static_cast<std::int64_t>(chunk_bytes));
    CHECK_FALSE(it::boolean(r, "/data/complete"));
    {
        const auto events = dep::progress_events(client, chunk_request);
        REQUIRE(events.size() == 1);
        CHECK(str(events[0], "/data/stage") == "uploading");
        CHECK(num(events[0], "/data/bytes") == static_cast<std::int64_t>(chunk_bytes));
        CHECK(num(events[0], "/data/bytes_total") == static_cast<std::int64_t>(archive.size()));
    }
    r = send_chunk(client, upload_id, 2 * chunk_bytes, std::string_view(archive).substr(2 * chunk_bytes, chunk_bytes));
    CHECK(it::error_code(r) == "offset_mismatch");
    CHECK(it::error_message(r) == "upload '" + upload_id + "' has 512 bytes: the next chunk goes at offset 512, not 1024");
    // A client that lost track asks where to resume.
    const json::value status = client.call("package_upload_status", json::object{{"upload_id", upload_id}});
    CHECK(num(status, "/received") == static_cast<std::int64_t>(chunk_bytes));
    for (std::size_t offset = num(status, "/received"); offset < archive.size(); offset += chunk_bytes) {
        r = send_chunk(client, upload_id, offset, std::string_view(archive).substr(offset, chunk_bytes));
        REQUIRE(it::error_code(r).empty());
    }
    CHECK(num(r, "/data/received") == static_cast<std::int64_t>(archive.size()));
    CHECK(it::boolean(r, "/data/complete"));
    CHECK(fs::file_size(uploads / (upload_id + ".tar.gz")) == archive.size());

    const std::string deploy_id =
        client.send_request("deploy_package", json::object{{"upload_id", upload_id}, {"target", "local"}});
    r = client.wait_response(deploy_id, it::scaled(60s));
    INFO(dump(r));
    REQUIRE(it::error_code(r).empty());
    CHECK(str(r, "/data/instance_id") == "static-site.local");
    CHECK(dep::stages(dep::progress_events(client, deploy_id)).back() == "done");
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");
    CHECK(directory_empty(uploads));  // deleted once deployed
    r = client.request("deploy_package", json::object{{"upload_id", upload_id}});
    CHECK(it::error_code(r) == "not_found");

    // --- a crash and a restart: the deployment is loaded from the store
    client.close();
    f.d.kill9();
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");  // the service outlives registryd
    f.d.start();
    it::ws_client after(f.d);
    {
        // The periodic health checks run again (a passing check's runs are no events: it stays passing).
        const fs::path installed = f.prefix / "static-site-1.0.0";
        const int runs = dep::health_runs(installed);
        const auto deadline = it::steady::now() + it::scaled(5s);
        while (dep::health_runs(installed) < runs + 2 && it::steady::now() < deadline) std::this_thread::sleep_for(50ms);
        CHECK(dep::health_runs(installed) >= runs + 2);
        const json::value got = after.call("get_service", json::object{{"instance_id", "static-site.local"}});
        CHECK(str(got, "/service/health/status") == "healthy");
    }
    const json::value restarted = after.call(
        "service_action", it::parse_object(R"({"instance_id": "static-site.local", "action": "restart"})"), it::scaled(30s));
    CHECK(str(restarted, "/service/state") == "running");
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");
    const json::value gone =
        after.call("undeploy", it::parse_object(R"({"instance_id": "static-site.local"})"), it::scaled(30s));
    CHECK(str(gone, "/instance_id") == "static-site.local");
    CHECK(dep::fetch_index(port).empty());
    CHECK_FALSE(fs::exists(f.prefix / "static-site-1.0.0"));
    CHECK_FALSE(fs::exists(f.prefix / "static-site"));

    // And after one more restart it is not known any more.
    after.close();
    REQUIRE(f.d.terminate().clean());
    f.d.start();
    it::ws_client last(f.d);
    r = last.request("undeploy", it::parse_object(R"({"instance_id": "static-site.local"})"));
    CHECK(it::error_code(r) == "not_found");
}

TEST_CASE("deploy upload: a wrong sha256, bad chunks and paths outside deploy.package_dirs get specific errors") {
    upload_fixture f;
    IT_DIAGNOSE(f.d);
    dep::package_options o;
    o.port = dep::free_port();
    const fs::path archive_path = dep::build_package(f.work.path(), o);
    const std::string archive = read_file(archive_path);
    it::ws_client client(f.d);

    // The declared sha256 is not the content's: refused at the last chunk, deleted.
    const std::string wrong(64, '0');
    const std::string upload_id = begin_upload(client, archive.size(), wrong);
    json::value r;
    for (std::size_t offset = 0; offset < archive.size(); offset += chunk_bytes) {
        r = send_chunk(client, upload_id, offset, std::string_view(archive).substr(offset, chunk_bytes));
        if (offset + chunk_bytes < archive.size()) REQUIRE(it::error_code(r).empty());
    }
    CHECK(it::error_code(r) == "checksum_mismatch");
    CHECK(it::error_message(r) == "the sha256 of the " + std::to_string(archive.size()) + " bytes received is " +
                                      sha256_hex(archive) + ", not the declared " + wrong + "; upload '" + upload_id +
                                      "' was deleted");
    CHECK(directory_empty(f.d.data_dir() / "deploy" / "uploads"));
    r = client.request("deploy_package", json::object{{"upload_id", upload_id}});
    CHECK(it::error_code(r) == "not_found");

    // Chunk and begin validation.
    const std::string id2 = begin_upload(client, archive.size(), sha256_hex(archive));
    r = client.request("package_upload_chunk", json::object{{"upload_id", id2}, {"offset", 0}, {"data", "not base64!"}});
    CHECK(it::error_code(r) == "invalid_request");
    CHECK(it::error_message(r) == "params.data: must be base64 (RFC 4648, with padding)");
    r = send_chunk(client, id2, 0, std::string_view(archive).substr(0, chunk_bytes + 1));
    CHECK(it::error_code(r) == "payload_too_large");
    CHECK(it::error_message(r) == "a chunk carries at most 512 bytes (got 513)");
    r = client.request("deploy_package", json::object{{"upload_id", id2}});
    CHECK(it::error_code(r) == "upload_incomplete");
    CHECK(it::error_message(r) == "upload '" + id2 + "' has 0 of " + std::to_string(archive.size()) + " bytes");
    r = client.request("package_upload_begin", json::object{{"size", 1u << 30}, {"sha256", wrong}});
    CHECK(it::error_code(r) == "payload_too_large");
    r = client.request("package_upload_begin", json::object{{"size", 10}, {"sha256", "abc"}});
    CHECK(it::error_message(r) == "params.sha256: must be 64 hexadecimal digits");
    r = client.request("deploy_package", json::object{{"upload_id", id2}, {"path", archive_path.string()}});
    CHECK(it::error_message(r) == "params: exactly one of upload_id and path is required");

    // The path form: inside package_dirs it works (see test_deploy.cpp); a
    // file elsewhere, or a symlink from inside to elsewhere, is forbidden.
    const fs::path outside = f.work.path() / "elsewhere.tar.gz";
    fs::copy_file(archive_path, outside);
    r = client.request("deploy_package", json::object{{"path", outside.string()}});
    CHECK(it::error_code(r) == "forbidden");
    CHECK(it::error_message(r) == outside.string() + " is not inside deploy.package_dirs (" +
                                      fs::canonical(f.work.path() / "archives").string() + ")");
    const fs::path link = f.work.path() / "archives" / "link.tar.gz";
    fs::create_symlink(outside, link);
    r = client.request("deploy_package", json::object{{"path", link.string()}});
    CHECK(it::error_code(r) == "forbidden");
    const fs::path climbing = f.work.path() / "archives" / ".." / "elsewhere.tar.gz";
    r = client.request("deploy_package", json::object{{"path", climbing.string()}});
    CHECK(it::error_code(r) == "forbidden");
    CHECK_FALSE(fs::exists(f.prefix));
}

TEST_CASE("deploy upload: without deploy.package_dirs the path form is refused") {
    it::temp_dir work{"registryd-upload"};
    it::registryd d{"deploy:\n  prefix: " + (work.path() / "opt").string() + "\n"};
    IT_DIAGNOSE(d);
    it::ws_client client(d);
    const json::value r = client.request("deploy_package", it::parse_object(R"({"path": "/tmp/x.tar.gz"})"));
    CHECK(it::error_code(r) == "forbidden");
    CHECK(it::error_message(r) == "deploy_package's path form is disabled (deploy.package_dirs is empty): upload the "
                                  "package with package_upload_begin instead");
}

TEST_CASE("deploy upload: the chunk size follows a lowered limits.max_message_bytes, and a chunk size that cannot fit is refused at start") {
    {
        // Only the frame limit is set: chunks shrink to fit it, base64 and envelope included.
        it::registryd d{"limits:\n  max_message_bytes: 4096\n"};
        it::ws_client client(d);
        const json::value begun = client.call("package_upload_begin",
                                              json::object{{"size", 10}, {"sha256", std::string(64, 'a')}});
        CHECK(num(begun, "/max_chunk_bytes") == (4096 - 1024) / 4 * 3);
    }
    // Both set, and they disagree: registryd names the option and exits 2.
    std::string failure;
    try {
        it::registryd d{"limits:\n  max_message_bytes: 4096\ndeploy:\n  upload_chunk_bytes: 64KiB\n"};
    } catch (const std::exception& e) {
        failure = e.what();
    }
    INFO(failure);
    CHECK(failure.find("exited with status 2") != std::string::npos);
    CHECK(failure.find("deploy.upload_chunk_bytes: a chunk of 65536 bytes") != std::string::npos);
}

TEST_CASE("deploy upload: upload ids are 128 random bits, not a clock and a counter") {
    upload_fixture f;
    IT_DIAGNOSE(f.d);
    it::ws_client client(f.d);
    const std::string digest = sha256_hex("abc");
    const std::string first = begin_upload(client, 3, digest);
    const std::string second = begin_upload(client, 3, digest);
    auto random_hex = [](const std::string& id) {
        return id.size() == 35 && id.starts_with("up-") &&
               std::all_of(id.begin() + 3, id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
    };
    CHECK(random_hex(first));
    CHECK(random_hex(second));
    CHECK(first != second);
    // Nothing of one id predicts the other: they differ in most of their digits.
    std::size_t same = 0;
    for (std::size_t i = 3; i < first.size() && i < second.size(); ++i) same += first[i] == second[i];
    CHECK(same < 16);
}
