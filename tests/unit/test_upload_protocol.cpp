// The upload actions through the transport-free protocol: parameter
// validation (base64 with padding, the sha256 form, exactly one of upload_id
// and path), the uploading progress event before each chunk's response, and
// `unavailable` on a server without uploads.
#include "protocol_test_support.hpp"

#include <registry/testing/fake_random.hpp>
#include <registry/deploy/package_uploads.hpp>
#include <registry/protocol/deploy.hpp>
#include <registry/testing/fake_clock.hpp>
#include <registry/testing/memory_store.hpp>
#include <registry/testing/memory_upload_files.hpp>

#include <doctest/doctest.h>

#include <string>

namespace {

using namespace registry;
using test::req;

struct fixture {
    testing::fake_clock clk;
    testing::memory_store st;
    class registry reg{clk, st};
    testing::memory_upload_files files;
    testing::fake_random random;
    deploy::package_uploads uploads{clk, files, random};
    protocol::server srv{reg};
    test::client c{srv, 1};

    fixture() {
        REQUIRE(test::run_now(reg.open()).ok());
        protocol::add_deploy_actions(srv, nullptr, &uploads);
    }

    // Begins an upload of `content`; its id.
    std::string begin(const std::string& content) {
        const std::string response = c.ask(req("b", "package_upload_begin", R"({"size":)" + std::to_string(content.size()) +
                                                                               R"(,"sha256":")" +
                                                                               testing::fake_digest(content) + R"("})"));
        const auto at = response.find("\"upload_id\":\"") + 13;
        return response.substr(at, response.find('"', at) - at);
    }
};

std::string chunk(const std::string& id, std::uint64_t offset, std::string_view base64) {
    return req("c", "package_upload_chunk", R"({"upload_id":")" + id + R"(","offset":)" + std::to_string(offset) +
                                                R"(,"data":")" + std::string(base64) + R"("})");
}

std::string error_of(std::string_view code, std::string_view message) {
    return R"({"id":"c","type":"response","error":{"code":")" + std::string(code) + R"(","message":")" +
           std::string(message) + R"("}})";
}

}  // namespace

TEST_CASE("upload protocol: base64 with every padding decodes, and each chunk reports its progress first") {
    fixture f;
    const std::string id = f.begin("ABCDEF");
    auto frames = f.c.send(chunk(id, 0, "QQ=="));  // "A"
    REQUIRE(frames.size() == 2);
    CHECK(frames[0] == R"({"type":"event","event":"deployment_progress","request_id":"c","data":{"stage":"uploading",)"
                       R"("package":"","version":"","target":"","message":"received 1 of 6 bytes","bytes":1,"bytes_total":6}})");
    CHECK(frames[1].find(R"("received":1,"complete":false)") != std::string::npos);
    f.c.send(chunk(id, 1, "QkM="));  // "BC"
    frames = f.c.send(chunk(id, 3, "REVG"));  // "DEF"
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].find(R"("message":"received all 6 bytes, sha256 verified","bytes":6,"bytes_total":6)") !=
          std::string::npos);
    CHECK(frames[1].find(R"("received":6,"complete":true)") != std::string::npos);
    CHECK(f.files.files.at(id) == "ABCDEF");
}

TEST_CASE("upload protocol: malformed chunks and begins are invalid_request naming the field") {
    fixture f;
    const std::string id = f.begin("ABCDEF");
    const std::string bad_base64 = "params.data: must be base64 (RFC 4648, with padding)";
    for (std::string_view data : {"QQ", "QQ=", "Q===", "QQ==QUJD", "QU*D", "QUJD\\n"}) {
        INFO(data);
        CHECK(f.c.ask(chunk(id, 0, data), "invalid_request") == error_of("invalid_request", bad_base64));
    }
    CHECK(f.c.ask(chunk(id, 0, ""), "invalid_request") == error_of("invalid_request", "params.data: must not be empty"));
    CHECK(f.files.files.at(id).empty());  // nothing was written

    CHECK(f.c.ask(req("c", "package_upload_begin", R"({"size":0,"sha256":")" + std::string(64, 'a') + R"("})"),
                  "invalid_request") == error_of("invalid_request", "params.size: must be at least 1"));
    CHECK(f.c.ask(req("c", "package_upload_begin", R"({"size":5,"sha256":")" + std::string(63, 'a') + R"(g"})"),
                  "invalid_request") == error_of("invalid_request", "params.sha256: must be 64 hexadecimal digits"));
    // Upper-case hex is the same digest.
    std::string upper = testing::fake_digest("xyz");
    for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    const std::string r = f.c.ask(req("c", "package_upload_begin", R"({"size":3,"sha256":")" + upper + R"("})"));
    const auto at = r.find("\"upload_id\":\"") + 13;
    const std::string id2 = r.substr(at, r.find('"', at) - at);
    CHECK(f.c.send(chunk(id2, 0, "eHl6")).size() == 2);  // "xyz": complete, no checksum_mismatch

    CHECK(f.c.ask(req("c", "deploy_package", R"({"upload_id":"x","path":"/tmp/a.tar.gz"})"), "invalid_request") ==
          error_of("invalid_request", "params: exactly one of upload_id and path is required"));
    CHECK(f.c.ask(req("c", "deploy_package", "{}"), "invalid_request") ==
          error_of("invalid_request", "params: exactly one of upload_id and path is required"));
}

TEST_CASE("upload protocol: a server without uploads answers unavailable") {
    testing::fake_clock clk;
    testing::memory_store st;
    class registry reg{clk, st};
    REQUIRE(test::run_now(reg.open()).ok());
    protocol::server srv{reg};
    test::client c{srv, 1};
    CHECK(c.ask(req("c", "package_upload_begin", R"({"size":3,"sha256":")" + std::string(64, 'a') + R"("})"),
                "unavailable") ==
          error_of("unavailable", "package uploads are not enabled on this server"));
}
