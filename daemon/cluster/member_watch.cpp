#include "cluster/member_watch.hpp"

#include "observability/log.hpp"
#include "runtime/asio_clock.hpp"

#include <utility>

namespace registryd {

member_watch::member_watch(boost::asio::io_context& io, std::shared_ptr<member_directory> directory,
                           std::chrono::milliseconds poll)
    : io_(io), directory_(std::move(directory)), poll_(poll) {}

registry::task<void> member_watch::run(std::stop_token stop) {
    asio_clock clock(io_);
    std::string secret;  // the cluster's, read once
    bool unreachable_logged = false;
    for (;;) {
        if (secret.empty()) {
            auto read = co_await directory_->cluster_secret();
            if (read) secret = std::move(*read);
        }
        // Not a co_await inside ?: (GCC 12 miscompiles a co_await in a condition).
        registry::result<std::vector<member_record>> members =
            registry::fail(registry::errc::unavailable, "the cluster's secret is not known yet");
        if (!secret.empty()) members = co_await directory_->members();
        if (!members) {
            if (!unreachable_logged) {
                log::warn("cannot read the cluster's members; what they offer stays as it was",
                          {{"error", members.err().message}});
                unreachable_logged = true;
            }
        } else {
            unreachable_logged = false;
            for (auto& f : followers_) co_await f(*members, secret);
        }
        const bool slept = co_await clock.sleep_until(clock.now() + poll_, stop);
        if (!slept) break;
    }
}

}  // namespace registryd
