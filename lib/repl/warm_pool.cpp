// The REPL executor: the warm pools, and the housekeeping of containers.
#include "executor_impl.hpp"

#include <utility>

namespace registry::repl {

std::string detail::pool_key(const language& lang) {
    std::string key = lang.name;
    key.push_back('\0');
    key += lang.version;
    return key;
}

std::optional<std::string> executor::impl::take_warm(engine_state& eng, const language& lang) {
    auto it = eng.warm.find(detail::pool_key(lang));
    if (it == eng.warm.end()) return std::nullopt;
    const time_point now = clk.now();
    while (!it->second.empty()) {
        warm_container w = std::move(it->second.front());
        it->second.pop_front();
        if (now - w.created < opts.warm_max_age) return std::move(w.id);
        tasks.spawn(discard(eng, std::move(w.id)));
    }
    return std::nullopt;
}

void executor::impl::fill_pools() {
    if (!accepting) return;
    for (auto& eng : engines) {
        if (!usable(eng)) continue;
        for (const auto& lang : langs) {
            const std::string key = detail::pool_key(lang);
            const std::size_t have = eng.warm[key].size() + eng.warm_creating[key];
            for (std::size_t i = have; i < lang.warm_pool; ++i) {
                ++eng.warm_creating[key];
                tasks.spawn(create_warm(eng, lang));
            }
        }
    }
}

task<void> executor::impl::create_warm(engine_state& eng, const language& lang) {
    const time_point deadline = clk.now() + opts.warm_max_age + lang.maximum.timeout + opts.lease_grace;
    auto id = co_await create(eng, spec_for(lang, lang.defaults, {}, deadline), deadline);
    const std::string key = detail::pool_key(lang);
    --eng.warm_creating[key];
    if (!id) co_return;  // retried by the housekeeping loop
    if (accepting) {
        eng.warm[key].push_back({std::move(*id), clk.now()});
    } else {
        co_await discard(eng, std::move(*id));
    }
}

void executor::impl::retry_stranded() {
    for (auto& eng : engines) {
        for (const auto& id : std::exchange(eng.stranded, {})) tasks.spawn(discard(eng, id));
    }
}

void executor::impl::replace_aged() {
    const time_point now = clk.now();
    for (auto& eng : engines) {
        for (auto& [name, pool] : eng.warm) {
            while (!pool.empty() && now - pool.front().created >= opts.warm_max_age) {
                tasks.spawn(discard(eng, std::move(pool.front().id)));
                pool.pop_front();
            }
        }
    }
}

}  // namespace registry::repl
