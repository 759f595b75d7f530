// The package upload state machine on a fake clock, over an in-memory
// upload_files port: contiguous offsets (a wrong one changes nothing and the
// upload resumes), the sha256 check on the last byte, the size caps, expiry,
// and claiming for a deploy.
#include "registry_test_support.hpp"

#include <registry/testing/fake_random.hpp>
#include <registry/deploy/package_uploads.hpp>
#include <registry/testing/memory_upload_files.hpp>

#include <doctest/doctest.h>

#include <string>

namespace {

using namespace registry;
using namespace registry::deploy;

using testing::fake_digest;

struct fixture {
    testing::fake_clock clock;
    testing::memory_upload_files files;
    upload_options options = [] {
        upload_options o;
        o.max_bytes = 100;
        o.max_chunk_bytes = 10;
        o.max_uploads = 2;
        o.idle_timeout = milliseconds(60000);
        o.sweep_interval = milliseconds(1000);
        return o;
    }();
    testing::fake_random random;
    package_uploads uploads{clock, files, random, options};
    const std::string content = "0123456789abcdefghijklmnopqrstuvwxy";  // 35 bytes

    std::string begin(std::string digest) {
        auto r = test::run_now(uploads.begin(content.size(), std::move(digest)));
        REQUIRE(r.ok());
        CHECK(r->received == 0);
        CHECK_FALSE(r->complete);
        return r->upload_id;
    }
    result<upload_status> chunk(const std::string& id, std::uint64_t offset, std::size_t length) {
        return test::run_now(uploads.chunk(id, offset, content.substr(offset, length)));
    }
};

}  // namespace

TEST_CASE("uploads: chunks at contiguous offsets complete the upload, a wrong offset changes nothing") {
    fixture f;
    const std::string id = f.begin(fake_digest(f.content));
    REQUIRE(f.chunk(id, 0, 10).ok());

    auto skipped = f.chunk(id, 20, 10);  // offset 10 is missing
    REQUIRE_FALSE(skipped.ok());
    CHECK(skipped.err().code == errc::offset_mismatch);
    CHECK(skipped.err().message == "upload '" + id + "' has 10 bytes: the next chunk goes at offset 10, not 20");
    auto repeated = f.chunk(id, 0, 10);  // a retry of a chunk that was written
    REQUIRE_FALSE(repeated.ok());
    CHECK(repeated.err().code == errc::offset_mismatch);
    CHECK(f.files.files.at(id) == f.content.substr(0, 10));

    auto status = f.uploads.status(id);
    REQUIRE(status.ok());
    CHECK(status->received == 10);
    REQUIRE(f.chunk(id, 10, 10).ok());
    REQUIRE(f.chunk(id, 20, 10).ok());
    auto last = f.chunk(id, 30, 5);
    REQUIRE(last.ok());
    CHECK(last->received == 35);
    CHECK(last->complete);
    CHECK(f.files.files.at(id) == f.content);

    auto again = f.chunk(id, 35, 1);
    REQUIRE_FALSE(again.ok());
    CHECK(again.err().code == errc::conflict);

    auto claimed = f.uploads.claim(id);
    REQUIRE(claimed.ok());
    CHECK(*claimed == "/uploads/" + id + ".tar.gz");
    CHECK(f.uploads.status(id).err().code == errc::not_found);  // claimed: no longer listed
    CHECK(f.files.files.count(id) == 1);                        // but kept for the deploy
    f.uploads.release(id);
    CHECK(f.files.removed.count(id) == 1);
    CHECK(f.uploads.size() == 0);
}

TEST_CASE("uploads: a sha256 mismatch on the last chunk deletes the upload") {
    fixture f;
    const std::string declared(64, 'a');
    const std::string id = f.begin(declared);
    REQUIRE(f.chunk(id, 0, 10).ok());
    REQUIRE(f.chunk(id, 10, 10).ok());
    REQUIRE(f.chunk(id, 20, 10).ok());
    auto last = f.chunk(id, 30, 5);
    REQUIRE_FALSE(last.ok());
    CHECK(last.err().code == errc::checksum_mismatch);
    CHECK(last.err().message == "the sha256 of the 35 bytes received is " + fake_digest(f.content) +
                                    ", not the declared " + declared + "; upload '" + id + "' was deleted");
    CHECK(f.files.removed.count(id) == 1);
    CHECK(f.files.files.count(id) == 0);
    CHECK(f.uploads.status(id).err().code == errc::not_found);
    CHECK(f.uploads.claim(id).err().code == errc::not_found);
}

TEST_CASE("uploads: the size caps, and a deploy of an incomplete upload") {
    fixture f;
    auto big = test::run_now(f.uploads.begin(101, fake_digest("")));
    REQUIRE_FALSE(big.ok());
    CHECK(big.err().code == errc::payload_too_large);
    CHECK(big.err().message == "a package upload is at most 100 bytes (declared: 101)");

    const std::string id = f.begin(fake_digest(f.content));
    auto wide = f.chunk(id, 0, 11);
    REQUIRE_FALSE(wide.ok());
    CHECK(wide.err().code == errc::payload_too_large);
    CHECK(wide.err().message == "a chunk carries at most 10 bytes (got 11)");

    REQUIRE(f.chunk(id, 0, 10).ok());
    REQUIRE(f.chunk(id, 10, 10).ok());
    REQUIRE(f.chunk(id, 20, 10).ok());
    auto beyond = test::run_now(f.uploads.chunk(id, 30, std::string(6, 'x')));
    REQUIRE_FALSE(beyond.ok());
    CHECK(beyond.err().code == errc::invalid_request);
    CHECK(beyond.err().message == "the chunk ends at byte 36, beyond the declared size 35");

    auto early = f.uploads.claim(id);
    REQUIRE_FALSE(early.ok());
    CHECK(early.err().code == errc::upload_incomplete);
    CHECK(early.err().message == "upload '" + id + "' has 30 of 35 bytes");

    // max_uploads is 2.
    f.begin(fake_digest(f.content));
    auto third = test::run_now(f.uploads.begin(5, fake_digest("")));
    REQUIRE_FALSE(third.ok());
    CHECK(third.err().code == errc::limit_exceeded);
}

TEST_CASE("uploads: an upload without a chunk for the idle timeout expires and its file is deleted") {
    fixture f;
    async_scope running;
    std::stop_source stop;
    running.spawn(f.uploads.run(stop.get_token()));
    const std::string idle = f.begin(fake_digest(f.content));
    const std::string active = f.begin(fake_digest(f.content));

    f.clock.advance(milliseconds(30000));
    REQUIRE(f.chunk(active, 0, 10).ok());  // renews its expiry
    f.clock.advance(milliseconds(30000));  // idle: 60s without a chunk
    CHECK(f.files.removed.count(idle) == 1);
    CHECK(f.files.removed.count(active) == 0);
    auto gone = f.chunk(idle, 0, 10);
    REQUIRE_FALSE(gone.ok());
    CHECK(gone.err().code == errc::not_found);
    CHECK(gone.err().message == "no upload '" + idle +
                                    "' (never begun, expired after 60s without a chunk, or already deployed)");
    REQUIRE(f.chunk(active, 10, 10).ok());

    f.clock.advance(milliseconds(60000));
    CHECK(f.files.removed.count(active) == 1);
    CHECK(f.uploads.size() == 0);
    stop.request_stop();
    CHECK(running.active() == 0);
}
