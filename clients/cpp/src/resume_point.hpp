// Where a watch resumes after a reconnect (the JS client's ResumePoint,
// clients/js/src/subscription.js). The events of one change share a
// revision: a lease expiry is lease_expired then service_deregistered. After
// a lease_expired its revision is incomplete until the second event arrives,
// so the resume point is the last complete revision plus how many events of
// the incomplete one were already delivered, which the replay then skips.
// (Resuming from the last revision itself matters: after a daemon restart
// the history starts at the restart's revision, and an earlier
// from_revision would force a resync.)
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry::client::detail {

class resume_point {
public:
    // `events`: the watch's event filter (empty: all).
    explicit resume_point(const std::vector<std::string>& events)
        : pairs_(events.empty() || std::find(events.begin(), events.end(), "service_deregistered") != events.end()) {}

    void start_at(std::uint64_t revision) {
        complete_ = revision;
        partial_ = 0;
        partial_count_ = 0;
    }

    // False for an event that a replay repeats (already delivered).
    bool accept(std::string_view event, std::uint64_t revision) {
        if (event == "registry_loaded" || event == "bookmark" || event == "resync_required") {
            // A snapshot or a bookmark is the whole state as of its revision.
            skip_.reset();
            if (event != "resync_required") start_at(std::max(revision, complete_));
            return true;
        }
        if (skip_) {
            if (revision == skip_->revision && skip_->count > 0) {
                --skip_->count;
                return false;
            }
            skip_.reset();
        }
        if (revision > partial_) {
            complete_ = std::max(complete_, revision - 1);  // events come in revision order
            partial_ = revision;
            partial_count_ = 0;
        }
        ++partial_count_;
        if (!(event == "lease_expired" && pairs_)) start_at(revision);  // the change is complete
        return true;
    }

    // The from_revision to resume from; the replay's repeats are skipped.
    std::uint64_t resume() {
        if (partial_ > complete_) skip_ = skip{partial_, partial_count_};
        else skip_.reset();
        return complete_;
    }

    std::uint64_t last() const { return std::max(complete_, partial_); }

private:
    struct skip {
        std::uint64_t revision;
        std::uint64_t count;
    };
    bool pairs_;
    std::uint64_t complete_ = 0;
    std::uint64_t partial_ = 0;
    std::uint64_t partial_count_ = 0;
    std::optional<skip> skip_;
};

}  // namespace registry::client::detail
