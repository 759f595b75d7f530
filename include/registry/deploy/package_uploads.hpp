// Packages uploaded over the protocol in chunks (docs/protocol.md,
// "package_upload_begin"): the client declares the size and sha256, then
// sends the bytes in order, each chunk at the offset where the previous one
// ended. A chunk at any other offset is refused with offset_mismatch and
// changes nothing, so the client resumes from `received`. When the last byte
// arrives the sha256 is checked; a mismatch deletes the file. A complete
// upload is claimed by one deploy_package and deleted after it. An upload
// that gets no chunk for idle_timeout expires and is deleted.
//
// The bytes go through the upload_files port; nothing is held in memory
// beyond the chunk being written. Single-threaded like the registry.
#pragma once

#include <registry/identity.hpp>
#include <registry/ports/clock.hpp>
#include <registry/ports/random.hpp>
#include <registry/ports/upload_files.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <stop_token>
#include <string>
#include <string_view>

namespace registry::deploy {

struct upload_options {
    std::uint64_t max_bytes = 512ull << 20;     // the declared size
    std::size_t max_chunk_bytes = 512 * 1024;   // decoded bytes of one chunk
    std::size_t max_uploads = 16;               // begun and not yet deleted
    std::size_t max_per_identity = 0;           // of them, one non-admin identity's (0: no such quota)
    milliseconds idle_timeout{300000};          // without a chunk: expired
    milliseconds sweep_interval{5000};          // how often run() deletes expired uploads
};

struct upload_status {
    std::string upload_id;
    std::uint64_t size = 0;
    std::uint64_t received = 0;
    bool complete = false;  // every byte received and the sha256 matched
    time_point expires_at{};
    std::string owner;  // the identity that began it
};

class package_uploads {
public:
    package_uploads(clock& clk, upload_files& files, random_source& random, upload_options options = {});
    package_uploads(const package_uploads&) = delete;
    package_uploads& operator=(const package_uploads&) = delete;

    const upload_options& options() const noexcept { return opts_; }

    // `by`: who asks; the default, anonymous, is an admin. An upload another
    // identity began: forbidden (unless `by` is an admin).
    // `sha256`: 64 lowercase hex digits (the protocol parser checks the form).
    task<result<upload_status>> begin(std::uint64_t size, std::string sha256,
                                      const identity& by = identity::anonymous());
    task<result<upload_status>> chunk(std::string upload_id, std::uint64_t offset, std::string data,
                                      const identity& by = identity::anonymous());
    result<upload_status> status(std::string_view upload_id, const identity& by = identity::anonymous());

    // A complete upload's file, for one deploy; the upload is then no longer
    // listed and its file is deleted by release().
    result<std::filesystem::path> claim(std::string_view upload_id, const identity& by = identity::anonymous());
    void release(std::string_view upload_id);

    // Deletes expired uploads every sweep_interval until `stop`.
    task<void> run(std::stop_token stop);

    std::size_t size() const noexcept { return uploads_.size(); }

private:
    struct upload {
        std::uint64_t size = 0;
        std::string sha256;
        std::uint64_t received = 0;
        bool complete = false;
        bool writing = false;  // a chunk or the digest is in flight
        bool claimed = false;
        time_point expires_at{};
        std::string owner;
    };

    // The upload, unless it is unknown, expired (then deleted), claimed, or
    // not `by`'s to `action`.
    result<upload*> find(std::string_view upload_id, const identity& by, std::string_view action);
    std::size_t held_by(std::string_view owner) const;
    upload_status status_of(const std::string& id, const upload& u) const;
    void erase(const std::string& id);
    void sweep();

    clock& clk_;
    upload_files& files_;
    random_source& random_;
    upload_options opts_;
    std::map<std::string, upload, std::less<>> uploads_;
};

}  // namespace registry::deploy
