#include <registry/deploy/package_uploads.hpp>
#include <registry/ownership.hpp>

#include <algorithm>

#include <utility>

namespace registry::deploy {

namespace {

std::string seconds_of(milliseconds d) { return std::to_string(std::chrono::duration_cast<seconds>(d).count()) + "s"; }

}  // namespace

package_uploads::package_uploads(clock& clk, upload_files& files, random_source& random, upload_options options)
    : clk_(clk), files_(files), random_(random), opts_(options) {}

upload_status package_uploads::status_of(const std::string& id, const upload& u) const {
    return upload_status{id, u.size, u.received, u.complete, u.expires_at, u.owner};
}

std::size_t package_uploads::held_by(std::string_view owner) const {
    return static_cast<std::size_t>(
        std::count_if(uploads_.begin(), uploads_.end(), [&](const auto& entry) { return entry.second.owner == owner; }));
}

void package_uploads::erase(const std::string& id) {
    files_.remove(id);
    uploads_.erase(id);
}

result<package_uploads::upload*> package_uploads::find(std::string_view upload_id, const identity& by,
                                                       std::string_view action) {
    auto it = uploads_.find(upload_id);
    if (it != uploads_.end() && !it->second.writing && !it->second.claimed && it->second.expires_at <= clk_.now()) {
        erase(std::string(upload_id));
        it = uploads_.end();
    }
    if (it == uploads_.end() || it->second.claimed) {
        return fail(errc::not_found, "no upload '" + std::string(upload_id) + "' (never begun, expired after " +
                                         seconds_of(opts_.idle_timeout) + " without a chunk, or already deployed)");
    }
    if (auto refused = check_owner(by, it->second.owner, action, "upload", upload_id)) {
        return unexpected{std::move(*refused)};
    }
    return &it->second;
}

task<result<upload_status>> package_uploads::begin(std::uint64_t size, std::string sha256, const identity& by) {
    if (size == 0) co_return fail_field("size", "must be at least 1");
    if (size > opts_.max_bytes) {
        co_return fail(errc::payload_too_large, "a package upload is at most " + std::to_string(opts_.max_bytes) +
                                                    " bytes (declared: " + std::to_string(size) + ")");
    }
    sweep();
    if (uploads_.size() >= opts_.max_uploads) {
        co_return fail(errc::limit_exceeded, std::to_string(opts_.max_uploads) +
                                                 " uploads are in progress already; finish or abandon one");
    }
    if (opts_.max_per_identity != 0 && !by.admin && held_by(by.name) >= opts_.max_per_identity) {
        co_return fail(errc::limit_exceeded, "quota uploads_per_identity: '" + by.name + "' holds its maximum of " +
                                                 std::to_string(opts_.max_per_identity) +
                                                 " uploads in progress; finish or abandon one");
    }
    // 128 random bits: nobody names an upload without having been told its id.
    std::string id = random_id(random_, "up-");
    while (uploads_.contains(id)) id = random_id(random_, "up-");
    upload& u = uploads_[id];
    u.owner = by.name;
    u.size = size;
    u.sha256 = std::move(sha256);
    u.expires_at = clk_.now() + opts_.idle_timeout;
    u.writing = true;
    auto created = co_await files_.create(id);
    u.writing = false;
    if (!created) {
        erase(id);
        co_return unexpected{created.err()};
    }
    co_return status_of(id, u);
}

task<result<upload_status>> package_uploads::chunk(std::string upload_id, std::uint64_t offset, std::string data,
                                                   const identity& by) {
    auto found = find(upload_id, by, "continue");
    if (!found) co_return unexpected{found.err()};
    upload& u = **found;
    if (u.writing) {
        co_return fail(errc::conflict, "a chunk of upload '" + upload_id +
                                           "' is being written; send the next one after its response");
    }
    if (u.complete) co_return fail(errc::conflict, "upload '" + upload_id + "' is complete");
    if (offset != u.received) {
        co_return fail(errc::offset_mismatch, "upload '" + upload_id + "' has " + std::to_string(u.received) +
                                                  " bytes: the next chunk goes at offset " + std::to_string(u.received) +
                                                  ", not " + std::to_string(offset));
    }
    if (data.size() > opts_.max_chunk_bytes) {
        co_return fail(errc::payload_too_large, "a chunk carries at most " + std::to_string(opts_.max_chunk_bytes) +
                                                    " bytes (got " + std::to_string(data.size()) + ")");
    }
    if (data.size() > u.size - u.received) {
        co_return fail(errc::invalid_request, "the chunk ends at byte " + std::to_string(offset + data.size()) +
                                                  ", beyond the declared size " + std::to_string(u.size));
    }
    const std::uint64_t length = data.size();
    u.writing = true;
    auto appended = co_await files_.append(upload_id, std::move(data));
    // `u` stays valid: nothing erases an upload that is being written.
    u.writing = false;
    if (!appended) {
        // The file's content is now unknown: the upload is over.
        erase(upload_id);
        co_return unexpected{appended.err()};
    }
    u.received += length;
    u.expires_at = clk_.now() + opts_.idle_timeout;
    if (u.received == u.size) {
        u.writing = true;
        auto digest = co_await files_.sha256(upload_id);
        u.writing = false;
        if (!digest) {
            erase(upload_id);
            co_return unexpected{digest.err()};
        }
        if (*digest != u.sha256) {
            error e{errc::checksum_mismatch, "the sha256 of the " + std::to_string(u.size) + " bytes received is " +
                                                 *digest + ", not the declared " + u.sha256 +
                                                 "; upload '" + upload_id + "' was deleted"};
            erase(upload_id);
            co_return unexpected{std::move(e)};
        }
        u.complete = true;
    }
    co_return status_of(upload_id, u);
}

result<upload_status> package_uploads::status(std::string_view upload_id, const identity& by) {
    auto found = find(upload_id, by, "query");
    if (!found) return unexpected{found.err()};
    return status_of(std::string(upload_id), **found);
}

result<std::filesystem::path> package_uploads::claim(std::string_view upload_id, const identity& by) {
    auto found = find(upload_id, by, "deploy");
    if (!found) return unexpected{found.err()};
    upload& u = **found;
    if (u.writing || !u.complete) {
        return fail(errc::upload_incomplete, "upload '" + std::string(upload_id) + "' has " + std::to_string(u.received) +
                                                 " of " + std::to_string(u.size) + " bytes");
    }
    u.claimed = true;
    return files_.path(std::string(upload_id));
}

void package_uploads::release(std::string_view upload_id) {
    auto it = uploads_.find(upload_id);
    if (it != uploads_.end() && it->second.claimed) erase(std::string(upload_id));
}

void package_uploads::sweep() {
    const time_point now = clk_.now();
    for (auto it = uploads_.begin(); it != uploads_.end();) {
        const upload& u = it->second;
        auto next = std::next(it);
        if (!u.writing && !u.claimed && u.expires_at <= now) {
            const std::string id = it->first;
            erase(id);
        }
        it = next;
    }
}

task<void> package_uploads::run(std::stop_token stop) {
    for (;;) {
        const bool slept = co_await clk_.sleep_until(clk_.now() + opts_.sweep_interval, stop);
        if (!slept) break;
        sweep();
    }
}

}  // namespace registry::deploy
