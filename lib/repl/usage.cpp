// The REPL executor: the resource usage of an execution's container. The
// engine's figures (container_engine::stats) are cgroup counters of the
// container: sampled while the program runs (memory comes and goes), and once
// more when it has ended, before the container is removed (the driver keeps
// the container alive after the program's exit for this: driver.hpp).
#include "executor_impl.hpp"

#include <registry/cancellation.hpp>

namespace registry::repl {

task<void> executor::impl::sample_usage(execution& ex, engine_state& eng, const std::string& id,
                                        std::stop_token done) {
    if (opts.usage_sample_interval <= milliseconds::zero()) co_return;
    try {
        while (co_await clk.sleep_until(clk.now() + opts.usage_sample_interval, done)) {
            auto sample = co_await eng.slot.engine->stats(id, done);
            if (sample) ex.result.usage.add(*sample);  // a missed sample only makes the figures coarser
        }
    } catch (const operation_cancelled&) {
        // the run is over
    }
}

task<void> executor::impl::last_usage(execution& ex, engine_state& eng, const std::string& id) {
    try {
        auto sample = co_await eng.slot.engine->stats(id);
        if (sample) ex.result.usage.add(*sample);
    } catch (...) {
        // an execution's outcome does not depend on its figures
    }
}

std::optional<std::string_view> executor::state_of(std::string_view execution_id, const identity& by) const {
    auto it = impl_->executions.find(execution_id);
    if (it == impl_->executions.end()) return std::nullopt;
    const auto& ex = *it->second;
    if (!by.admin && ex.owner != by.name) return std::nullopt;
    switch (ex.state) {
        case detail::phase::queued: return "queued";
        case detail::phase::running: return "running";
        case detail::phase::finished: return std::nullopt;
    }
    return std::nullopt;
}

}  // namespace registry::repl
