// The container manager's streams: a container's logs so far, log follows
// and image pulls (per-request streams of events that are not changes,
// produced by tasks of the manager's scope into an event relay).
#include "container_events.hpp"
#include "manager_impl.hpp"

#include <registry/cancellation.hpp>
#include <registry/registry.hpp>

namespace registry {

using namespace containers;

// Relays every element of an engine stream as an event, until it ends or
// the consumer is gone; yields the stream's failure (opening it included).
template <typename T, typename ToEvent>
task<std::optional<error>> container_manager::impl::relay_stream(task<result<engine_stream<T>>> opening,
                                                                 detail::event_relay& relay, ToEvent to_event) {
    auto opened = co_await std::move(opening);
    if (!opened) co_return opened.err();
    auto& stream = *opened;
    auto it = co_await stream.begin();
    while (it != stream.end() && !relay.closed()) {
        auto& item = *it;
        if (!item) co_return item.err();
        relay.push(to_event(std::move(*item)));
        co_await ++it;
    }
    co_return std::nullopt;
}

task<void> container_manager::impl::produce_logs(detail::event_relay_ptr relay, node_ptr n, container_ptr c,
                                                std::optional<std::size_t> tail) {
    std::stop_callback on_stop(n->token(), [relay] { relay->stop_producer(); });
    const log_options following{tail, true, true, true};
    auto log_line = [&](output_chunk chunk) {
        auto e = log_event(c, std::move(chunk));
        e->revision = reg.revision();
        return e;
    };
    std::optional<error> failure;
    try {
        auto opening = n->cfg.engine->logs(c->container_id, following, relay->producer_token());
        failure = co_await relay_stream(std::move(opening), *relay, log_line);
    } catch (const operation_cancelled&) {
    }
    auto last = log_event(c, std::nullopt);
    last->revision = reg.revision();
    last->failure = std::move(failure);
    relay->push(std::move(last));
    relay->finish();
}

task<void> container_manager::impl::produce_pulls(detail::event_relay_ptr relay, std::string reference,
                                                 std::vector<node_ptr> targets) {
    std::stop_callback on_stop(stopping, [relay] { relay->stop_producer(); });
    for (const node_ptr& n : targets) {
        auto progress_event = [&](pull_progress p) { return pull_event(*n, reference, std::move(p), {}); };
        std::optional<error> failure;
        try {
            auto opening = n->cfg.engine->pull_image(reference, relay->producer_token());
            failure = co_await relay_stream(std::move(opening), *relay, progress_event);
        } catch (const operation_cancelled&) {
            break;
        }
        if (relay->closed()) break;
        relay->push(pull_event(*n, reference, std::nullopt, std::move(failure)));
    }
    relay->finish();
}

std::shared_ptr<event> container_manager::impl::pull_event(const node& n, const std::string& reference,
                                                          std::optional<pull_progress> progress,
                                                          std::optional<error> failure) {
    auto item = std::make_shared<image_pull_item>();
    item->engine = n.cfg.name;
    item->reference = reference;
    item->end = !progress;
    item->progress = std::move(progress);
    auto e = with_detail(event_type::image_pull_progress, std::move(item));
    e->revision = reg.revision();
    e->failure = std::move(failure);
    return e;
}

task<result<std::vector<output_chunk>>> container_manager::logs(std::string_view container_id,
                                                                std::optional<std::size_t> tail) {
    auto& m = *impl_;
    auto located = m.locate(container_id);
    if (!located) co_return unexpected{located.err()};
    const container_ptr c = located->first;
    const auto n = located->second;
    const log_options tail_only{tail, false, true, true};
    auto opened = co_await n->cfg.engine->logs(c->container_id, tail_only, m.stopping);
    if (!opened) co_return unexpected{opened.err()};
    std::vector<output_chunk> out;
    auto& stream = *opened;
    for (auto it = co_await stream.begin(); it != stream.end(); co_await ++it) {
        auto& item = *it;
        if (!item) co_return unexpected{item.err()};
        out.push_back(std::move(*item));
    }
    co_return out;
}

async_generator<event_ptr> container_manager::follow_logs(std::string container_id, std::optional<std::size_t> tail,
                                                          std::stop_token stop) {
    auto& m = *impl_;
    auto relay = std::make_shared<detail::event_relay>();
    auto located = m.locate(container_id);
    if (located && !m.stopping.stop_requested()) {
        m.work.spawn(m.produce_logs(relay, located->second, located->first, tail));
    } else {
        relay->finish();
    }
    return detail::relay_events(detail::relay_ref{std::move(relay)}, std::move(stop));
}

async_generator<event_ptr> container_manager::pull_image(std::string reference, std::optional<std::string> engine,
                                                         std::stop_token stop) {
    auto& m = *impl_;
    auto relay = std::make_shared<detail::event_relay>();
    std::vector<node_ptr> targets;
    for (const auto& n : m.pool.all()) {
        if (engine ? n->cfg.name == *engine : n->online) targets.push_back(n);
    }
    if (!m.stopping.stop_requested()) {
        m.work.spawn(m.produce_pulls(relay, std::move(reference), std::move(targets)));
    } else {
        relay->finish();
    }
    return detail::relay_events(detail::relay_ref{std::move(relay)}, std::move(stop));
}

}  // namespace registry
