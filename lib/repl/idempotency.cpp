// The REPL executor: idempotency keys, and how long a finished execution stays
// findable by its key.
#include "executor_impl.hpp"

#include <utility>

namespace registry::repl {

void executor::impl::prune() {
    const time_point now = clk.now();
    for (auto it = executions.begin(); it != executions.end();) {
        const auto& ex = *it->second;
        if (ex.state == phase::finished && now - ex.finished_at >= opts.idempotency_window) {
            if (ex.req.idempotency_key) by_key.erase(key_of(ex.owner, *ex.req.idempotency_key));
            it = executions.erase(it);
        } else {
            ++it;
        }
    }
}

std::optional<submission> executor::impl::rejoin(const std::string& key, listener_ptr& l,
                                                 const std::function<void(const submission&)>& accepted) {
    auto k = by_key.find(key);
    if (k == by_key.end()) return std::nullopt;
    execution_ptr ex = executions.at(k->second);
    submission sub{ex->id, false};
    if (accepted) accepted(sub);
    if (ex->state == phase::finished) {
        if (l) l->on_finished(ex->result);
    } else if (l) {
        ex->listeners.push_back(std::move(l));
    }
    return sub;
}

}  // namespace registry::repl
