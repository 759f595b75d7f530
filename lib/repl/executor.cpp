// The REPL executor: the lifecycle, and the public interface.
#include "executor_impl.hpp"

#include <registry/when_all.hpp>

#include <utility>

namespace registry::repl {

namespace {

constexpr milliseconds housekeeping_interval{1'000};

}  // namespace

task<void> executor::impl::run(std::stop_token stop) {
    accepting = true;
    for (;;) {
        dispatch();  // executions queued while no engine was online
        prune();
        retry_stranded();
        replace_aged();
        fill_pools();
        const bool slept = co_await clk.sleep_until(clk.now() + housekeeping_interval, stop);
        if (!slept) break;
    }
    accepting = false;
    while (!queue.empty()) {
        execution_ptr ex = std::move(queue.front());
        queue.pop_front();
        ex->result.cancelled = true;
        finish(*ex);
    }
    for (auto& [id, ex] : executions) {
        if (ex->state == phase::running) {
            ex->cancel_requested = true;
            ex->cancel->request_stop();
        }
    }
    co_await tasks.join();
    std::vector<task<void>> removals;
    for (auto& eng : engines) {
        for (const auto& id : std::exchange(eng.stranded, {})) removals.push_back(discard(eng, id));
        for (auto& [name, pool] : eng.warm) {
            for (auto& w : pool) removals.push_back(discard(eng, std::move(w.id)));
            pool.clear();
        }
    }
    co_await when_all(std::move(removals));
}

executor::executor(clock& clk, random_source& random, std::vector<engine_slot> engines,
                   std::vector<language> languages, executor_options options, lease_sink* leases)
    : impl_(std::make_unique<impl>(clk, random, std::move(engines), std::move(languages), std::move(options),
                                   leases)) {}

executor::~executor() = default;

task<void> executor::run(std::stop_token stop) { return impl_->run(std::move(stop)); }

const std::vector<language>& executor::languages() const noexcept { return impl_->langs; }

result<void> executor::add_engine(engine_slot slot) { return impl_->add_engine(std::move(slot)); }

result<submission> executor::execute(request req, listener_ptr l,
                                     const std::function<void(const submission&)>& accepted, const identity& by) {
    return impl_->execute(std::move(req), std::move(l), accepted, by);
}

result<void> executor::cancel(std::string_view execution_id, const identity& by) {
    return impl_->cancel(execution_id, by);
}

std::size_t executor::running() const noexcept { return impl_->running_count; }
std::size_t executor::queued() const noexcept { return impl_->queue.size(); }

std::size_t executor::warm(std::string_view language, std::optional<std::string_view> version) const noexcept {
    std::size_t n = 0;
    for (const auto& l : impl_->langs) {
        if (l.name != language || (version && l.version != *version)) continue;
        for (const auto& e : impl_->engines) {
            if (auto it = e.warm.find(detail::pool_key(l)); it != e.warm.end()) n += it->second.size();
        }
    }
    return n;
}

}  // namespace registry::repl
