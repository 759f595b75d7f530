#include "store/etcd_follower.hpp"

#include "observability/log.hpp"
#include "runtime/asio_clock.hpp"
#include "runtime/detached_task.hpp"
#include "store/base64.hpp"

#include "codec/json_writer.hpp"

#include <registry/cancellation.hpp>

#include <simdjson.h>

#include <coroutine>
#include <exception>
#include <map>
#include <optional>
#include <stop_token>
#include <utility>
#include <vector>

namespace registryd {

namespace {

namespace dom = simdjson::dom;
using registry::store_error;

// How soon a broken watch is tried again.
constexpr std::chrono::milliseconds retry_interval{500};

}  // namespace

class etcd_follower::impl : public std::enable_shared_from_this<impl> {
public:
    impl(boost::asio::io_context& io, std::shared_ptr<etcd_gateway> gateway)
        : gateway_(std::move(gateway)), clock_(io) {}

    void stop_following() {
        if (!following_) return;
        lost_ = nullptr;  // no one to tell: the daemon asked
        following_ = false;
        follow_stop_.request_stop();
        fail_barriers("stopped following the writer's transactions");
    }

    void follow(std::uint64_t after, std::function<void(etcd_txn_seen)> each, std::function<void(std::string)> lost) {
        if (stopped_ || following_) return;
        following_ = true;  // again after `lost`: the daemon loaded the registry again
        follow_stop_ = std::stop_source{};
        lost_why_.reset();
        applied_ = after;
        each_ = std::move(each);
        lost_ = std::move(lost);
        run_detached(shared_from_this(), follow_loop(shared_from_this()));
    }

    registry::task<registry::result<void>> read_barrier() {
        auto self = shared_from_this();  // the port may go while this waits
        if (stopped_) co_return registry::fail(registry::errc::unavailable, "etcd store: stopped");
        std::shared_ptr<barrier_round> round = join_round();
        co_await round_awaiter{*round};
        if (round->error) {
            co_return registry::fail(registry::errc::unavailable,
                                     "read barrier: etcd cannot say what the writer committed: " + *round->error);
        }
        const std::uint64_t target = round->revision;
        if (target <= applied_) co_return registry::result<void>{};  // also: no transaction yet (0)
        if (stopped_) co_return registry::fail(registry::errc::unavailable, "etcd store: stopped");
        if (!following_) {
            co_return registry::fail(registry::errc::unavailable,
                                     "read barrier: not following the writer's transactions" +
                                         (lost_why_ ? ": " + *lost_why_ : std::string()));
        }
        auto wait = std::make_shared<apply_wait>();
        applies_.emplace(target, wait);
        const registry::time_point deadline = clock_.now() + opts().request_timeout;
        run_detached(self, expire(self, wait, target, deadline));
        co_await apply_awaiter{*wait};
        if (!wait->failed.empty()) co_return registry::fail(registry::errc::unavailable, "read barrier: " + wait->failed);
        co_return registry::result<void>{};
    }

    void stop() {
        stopped_ = true;
        follow_stop_.request_stop();
        fail_barriers("etcd store: stopped");
    }

private:
    const etcd_options& opts() const noexcept { return gateway_->options(); }

    // ------------------------------------- following the writer through etcd

    bool follow_stopped() const noexcept { return stopped_ || follow_stop_.stop_requested() || !following_; }

    // Watches from the revision after the last one applied, again and again
    // until following ends; an outage is logged once, and its end.
    static registry::task<void> follow_loop(std::shared_ptr<impl> self) {
        std::string problem;  // the one last logged, empty while following
        log::info("following the registry's writer through etcd", {{"from_revision", self->applied_ + 1}});
        while (!self->follow_stopped()) {
            std::optional<std::string> broke;
            try {
                broke = co_await self->watch(problem);
            } catch (const registry::operation_cancelled&) {
                co_return;
            } catch (const std::exception& e) {
                broke = std::string("etcd watch: ") + e.what();
            }
            if (!broke || self->follow_stopped()) co_return;
            if (problem.empty()) {  // once per outage; what it turns into after that, at debug level
                problem = *broke;
                log::warn("cannot follow the registry's writer through etcd; retrying every 500 ms",
                          {{"error", problem}, {"from_revision", self->applied_ + 1}});
            } else if (*broke != problem) {
                problem = *broke;
                log::debug("still cannot follow the registry's writer through etcd",
                           {{"error", problem}, {"from_revision", self->applied_ + 1}});
            }
            std::stop_token stop = self->follow_stop_.get_token();
            const registry::time_point next = self->clock_.now() + retry_interval;
            if (!co_await self->clock_.sleep_until(next, stop)) co_return;
        }
    }

    // One watch stream, from the first endpoint that takes it. Why it ended
    // (to retry), or nullopt when following ended (stopped, lost).
    registry::task<std::optional<std::string>> watch(std::string& problem) {
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object().key("create_request").begin_object()
            .key("key").string(base64_encode(opts().prefix))
            .key("range_end").string(base64_encode(etcd_prefix_end(opts().prefix)))
            .key("start_revision").string(std::to_string(applied_ + 1))
            .end_object().end_object();
        std::stop_token stop = follow_stop_.get_token();
        auto opened = co_await gateway_->open_stream("/v3/watch", std::move(body), stop);
        if (!opened) co_return opened.err().message;
        co_return co_await read_watch(std::move(opened->stream), std::move(opened->endpoint), problem);
    }

    registry::task<std::optional<std::string>> read_watch(http_stream stream, std::string endpoint, std::string& problem) {
        const std::size_t limit = gateway_->max_body_bytes();
        json_object_splitter split(limit);
        for (;;) {
            std::stop_token stop = follow_stop_.get_token();
            auto piece = co_await stream.next(stop);
            if (follow_stopped()) co_return std::nullopt;
            if (!piece) co_return piece.err().message;
            if (!*piece) co_return endpoint + ": etcd ended the watch stream";
            if (!split.feed(**piece)) {
                lose("a watch message from etcd is larger than " + std::to_string(limit) + " bytes");
                co_return std::nullopt;
            }
            for (;;) {
                etcd_watch_message m;
                try {
                    auto object = split.next();
                    if (!object) break;
                    m = parse_watch_message(watch_parser_, *object, opts().prefix);
                } catch (const store_error& e) {
                    co_return endpoint + ": " + e.what();
                }
                if (m.error) co_return endpoint + "/v3/watch: " + *m.error;
                if (m.compact_revision > 0) {
                    lose("etcd compacted its history up to revision " + std::to_string(m.compact_revision) +
                         ", past revision " + std::to_string(applied_ + 1) + " that following needs next");
                    co_return std::nullopt;
                }
                if (m.canceled) co_return endpoint + ": etcd canceled the watch: " + m.cancel_reason;
                if (m.created && !problem.empty()) {
                    problem.clear();
                    log::info("following the registry's writer through etcd again", {{"from_revision", applied_ + 1}});
                }
                for (auto& txn : m.revisions) {
                    if (!apply(std::move(txn))) co_return std::nullopt;
                }
            }
        }
    }

    // Hands one revision to `each` (none twice); false when following ended.
    bool apply(etcd_txn_seen txn) {
        if (txn.revision <= applied_) return true;
        const std::uint64_t revision = txn.revision;
        if (!txn.mutations.empty()) {
            try {
                each_(std::move(txn));
            } catch (const std::exception& e) {
                lose(std::string("applying etcd revision ") + std::to_string(revision) + " failed: " + e.what());
                return false;
            }
        }
        if (follow_stopped()) return false;
        applied_ = revision;
        // Waiters resumed here may wait again: take them one at a time.
        while (!applies_.empty() && applies_.begin()->first <= applied_) {
            auto wait = std::move(applies_.begin()->second);
            applies_.erase(applies_.begin());
            wait->finish({});
        }
        return true;
    }

    // Following ends for good: the daemon is told once.
    void lose(const std::string& why) {
        log::warn("stopped following the registry's writer through etcd", {{"error", why}});
        lost_why_ = why;
        following_ = false;
        follow_stop_.request_stop();
        fail_barriers("not following the writer's transactions: " + why);
        if (auto lost = std::exchange(lost_, nullptr)) lost(why);
    }

    // ------------------------------------------------------ read barriers

    // One linearizable read of the revision key, shared by the barriers
    // that joined it before it was sent.
    struct barrier_round {
        std::vector<std::coroutine_handle<>> waiters;
        bool done = false;
        std::uint64_t revision = 0;  // the revision key's mod_revision; 0: none
        std::optional<std::string> error;
    };
    struct round_awaiter {
        barrier_round& round;
        bool await_ready() const noexcept { return round.done; }
        void await_suspend(std::coroutine_handle<> h) { round.waiters.push_back(h); }
        void await_resume() const noexcept {}
    };

    // A barrier waiting for following to reach a revision.
    struct apply_wait {
        std::coroutine_handle<> handle;
        bool done = false;
        std::string failed;  // why, when it did not get there
        std::stop_source timer;
        void finish(std::string why) {
            if (done) return;
            done = true;
            failed = std::move(why);
            timer.request_stop();
            if (handle) handle.resume();
        }
    };
    struct apply_awaiter {
        apply_wait& wait;
        bool await_ready() const noexcept { return wait.done; }
        void await_suspend(std::coroutine_handle<> h) noexcept { wait.handle = h; }
        void await_resume() const noexcept {}
    };

    // The round a barrier called now waits for: the one in flight began
    // before the call, so it proves nothing about writes acknowledged
    // before it; the barrier joins the next one (sent when that one ends).
    std::shared_ptr<barrier_round> join_round() {
        if (!round_running_) {
            auto round = std::make_shared<barrier_round>();
            round_running_ = round;
            run_detached(shared_from_this(), run_round(shared_from_this(), round));
            return round;
        }
        if (!round_next_) round_next_ = std::make_shared<barrier_round>();
        return round_next_;
    }

    static registry::task<void> run_round(std::shared_ptr<impl> self, std::shared_ptr<barrier_round> round) {
        try {
            round->revision = co_await self->writer_revision();
        } catch (const std::exception& e) {
            round->error = e.what();
        }
        self->round_running_ = std::exchange(self->round_next_, nullptr);
        if (self->round_running_) run_detached(self, run_round(self, self->round_running_));
        round->done = true;
        for (auto h : std::exchange(round->waiters, {})) h.resume();
    }

    // The etcd revision of the writer's last transaction (linearizable).
    registry::task<std::uint64_t> writer_revision() {
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object()
            .key("key").string(base64_encode(opts().prefix + std::string(etcd_revision_key)))
            .key("keys_only").boolean(true)
            .end_object();
        dom::element doc = co_await gateway_->call("/v3/kv/range", std::move(body));
        dom::array kvs;
        if (doc["kvs"].get(kvs) != simdjson::SUCCESS || kvs.size() == 0) co_return 0;
        co_return etcd_number(etcd_field(*kvs.begin(), "mod_revision"));
    }

    // Fails a barrier still waiting at `deadline`.
    static registry::task<void> expire(std::shared_ptr<impl> self, std::shared_ptr<apply_wait> wait,
                                       std::uint64_t target, registry::time_point deadline) {
        std::stop_token stop = wait->timer.get_token();
        if (!co_await self->clock_.sleep_until(deadline, stop) || wait->done) co_return;
        for (auto [it, end] = self->applies_.equal_range(target); it != end; ++it) {
            if (it->second == wait) {
                self->applies_.erase(it);
                break;
            }
        }
        wait->finish("following the writer's transactions has not reached etcd revision " + std::to_string(target) +
                     " within " + std::to_string(self->opts().request_timeout.count()) + " ms (it is at " +
                     std::to_string(self->applied_) + ")");
    }

    void fail_barriers(const std::string& why) {
        auto waits = std::exchange(applies_, {});
        for (auto& [target, wait] : waits) wait->finish(why);
    }

    std::shared_ptr<etcd_gateway> gateway_;
    asio_clock clock_;
    bool stopped_ = false;
    bool following_ = false;
    std::uint64_t applied_ = 0;  // the last etcd revision handed to each_ (or skipped: meta/ only)
    std::function<void(etcd_txn_seen)> each_;
    std::function<void(std::string)> lost_;
    std::optional<std::string> lost_why_;
    std::stop_source follow_stop_;
    dom::parser watch_parser_;  // the watch's own: its messages are read across suspensions of call()
    std::shared_ptr<barrier_round> round_running_, round_next_;
    std::multimap<std::uint64_t, std::shared_ptr<apply_wait>> applies_;  // by the revision they wait for
};

etcd_follower::etcd_follower(boost::asio::io_context& io, std::shared_ptr<etcd_gateway> gateway)
    : impl_(std::make_shared<impl>(io, std::move(gateway))) {}

etcd_follower::~etcd_follower() { stop(); }

void etcd_follower::follow(std::uint64_t after, std::function<void(etcd_txn_seen)> each,
                           std::function<void(std::string)> lost) {
    impl_->follow(after, std::move(each), std::move(lost));
}

registry::task<registry::result<void>> etcd_follower::read_barrier() { return impl_->read_barrier(); }

void etcd_follower::stop_following() { impl_->stop_following(); }

void etcd_follower::stop() { impl_->stop(); }

}  // namespace registryd
