// The container actions of docs/protocol.md ("Containers"): each one a
// container_manager call and a response. Log follows and image pulls answer
// with a subscription id of their own and stream their events under it.
#include "session.hpp"

#include "codec/container_record.hpp"
#include "codec/time.hpp"
#include "codec/utf8.hpp"

namespace registry::protocol {

using detail::ms;

namespace {

constexpr std::size_t default_tail_lines = 1000;

result<void> check_ttl(const std::optional<seconds>& ttl, const container_manager_options& o) {
    if (ttl && (*ttl < o.min_ttl || *ttl > o.max_ttl)) {
        return fail(errc::invalid_request, "params.ttl_seconds: must be " + std::to_string(o.min_ttl.count()) + "-" +
                                               std::to_string(o.max_ttl.count()));
    }
    return result<void>{};
}

void write_container_data(detail::json_writer& w, const managed_container& c) {
    w.begin_object().key("container");
    write_container(w, c);
    w.end_object();
}

}  // namespace

result<container_manager*> session::containers() {
    container_manager* m = srv_.containers();
    if (!m) return fail(errc::unavailable, "no container engine is configured on this server");
    return m;
}

result<void> session::stream(call& c, const std::function<async_generator<event_ptr>(std::stop_token)>& open,
                             const std::function<void(detail::json_writer&)>& write_more) {
    if (auto allowed = may_subscribe(); !allowed) return allowed;
    std::string id = "s" + std::to_string(++subscriptions_started_);
    std::stop_source stop;
    auto events = open(stop.get_token());
    const bool sent = reply(c, [&](detail::json_writer& w) {
        w.begin_object().key("subscription").string(id);
        write_more(w);
        w.end_object();
    });
    if (sent) start_subscription(std::move(id), std::move(events), std::move(stop));
    return result<void>{};
}

task<result<void>> session::on(call& c, container_create_params& p) {
    auto m = containers();
    if (!m) co_return unexpected{m.err()};
    auto ttl_ok = check_ttl(p.request.ttl, (*m)->options());
    if (!ttl_ok) co_return ttl_ok;
    auto preset_ok = (*m)->apply_preset(p.request);
    if (!preset_ok) co_return fail(errc::invalid_request, "params." + preset_ok.err().message);
    auto made = co_await (*m)->create(std::move(p.request));
    if (!made) co_return unexpected{made.err()};
    reply(c, [&](detail::json_writer& w) { write_container_data(w, **made); });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, container_list_params& p) {
    auto m = containers();
    if (!m) co_return unexpected{m.err()};
    auto all = (*m)->list();
    reply(c, [&](detail::json_writer& w) {
        w.begin_object().key("revision").number(reg().revision()).key("containers").begin_array();
        for (const auto& ct : all) {
            if (p.engine && ct->engine != *p.engine) continue;
            if (p.state && ct->state != *p.state) continue;
            write_container(w, *ct);
        }
        w.end_array().end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, container_get_params& p) {
    auto m = containers();
    if (!m) co_return unexpected{m.err()};
    auto ct = (*m)->find(p.container_id);
    if (!ct) co_return fail(errc::not_found, "no managed container '" + p.container_id + "'");
    reply(c, [&](detail::json_writer& w) {
        w.begin_object().key("container");
        write_container(w, *ct, detail::container_view::full);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, container_logs_params& p) {
    auto m = containers();
    if (!m) co_return unexpected{m.err()};
    auto ct = (*m)->find(p.container_id);
    if (!ct) co_return fail(errc::not_found, "no managed container '" + p.container_id + "'");
    std::optional<std::size_t> tail;
    if (p.tail) tail = static_cast<std::size_t>(*p.tail);
    if (p.follow) {
        container_manager* mgr = *m;
        co_return stream(
            c,
            [&](std::stop_token stop) { return mgr->follow_logs(ct->container_id, tail, std::move(stop)); },
            [&](detail::json_writer& w) { w.key("container_id").string(ct->container_id); });
    }
    auto output = co_await (*m)->logs(ct->container_id, tail.value_or(default_tail_lines));
    if (!output) co_return unexpected{output.err()};
    reply(c, [&](detail::json_writer& w) {
        w.begin_object().key("container_id").string(ct->container_id).key("output").begin_array();
        for (const auto& chunk : *output) {
            w.begin_object()
                .key("stream").string(to_string(chunk.stream))
                .key("data").string(detail::valid_utf8(chunk.bytes))
                .end_object();
        }
        w.end_array().end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, container_stop_params& p) {
    auto m = containers();
    if (!m) co_return unexpected{m.err()};
    const seconds grace{static_cast<seconds::rep>(p.grace_seconds.value_or(10))};
    auto stopped = co_await (*m)->stop(p.container_id, grace);
    if (!stopped) co_return unexpected{stopped.err()};
    reply(c, [&](detail::json_writer& w) { write_container_data(w, **stopped); });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, container_remove_params& p) {
    auto m = containers();
    if (!m) co_return unexpected{m.err()};
    auto removed = co_await (*m)->remove(p.container_id, p.force);
    if (!removed) co_return unexpected{removed.err()};
    reply(c, [&](detail::json_writer& w) { write_container_data(w, **removed); });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, container_extend_params& p) {
    auto m = containers();
    if (!m) co_return unexpected{m.err()};
    auto ttl_ok = check_ttl(p.ttl, (*m)->options());
    if (!ttl_ok) co_return ttl_ok;
    auto extended = co_await (*m)->extend(p.container_id, p.ttl);
    if (!extended) co_return unexpected{extended.err()};
    const managed_container& ct = **extended;
    reply(c, [&](detail::json_writer& w) {
        w.begin_object()
            .key("lease_id").number(ct.lease_id)
            .key("container_id").string(ct.container_id)
            .key("ttl_seconds").number(ct.ttl.count())
            .key("expires_at_ms").number(ms(ct.expires_at))
            .end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, image_pull_params& p) {
    auto m = containers();
    if (!m) co_return unexpected{m.err()};
    container_manager* mgr = *m;
    if (p.engine) {
        const auto nodes = mgr->nodes();
        const bool known = std::any_of(nodes.begin(), nodes.end(), [&](const auto& n) { return n.name == *p.engine; });
        if (!known) co_return fail(errc::not_found, "no engine '" + *p.engine + "'");
    }
    co_return stream(
        c, [&](std::stop_token stop) { return mgr->pull_image(p.reference, p.engine, std::move(stop)); },
        [&](detail::json_writer& w) { w.key("reference").string(p.reference); });
}

task<result<void>> session::on(call& c, list_nodes_params&) {
    auto m = containers();
    if (!m) co_return unexpected{m.err()};
    const auto nodes = (*m)->nodes();
    reply(c, [&](detail::json_writer& w) {
        w.begin_object().key("nodes").begin_array();
        for (const auto& n : nodes) {
            w.begin_object()
                .key("name").string(n.name)
                .key("endpoint").string(n.endpoint)
                .key("status").string(n.online ? "online" : "offline")
                .key("capacity").number(n.capacity)
                .key("running").number(n.running)
                .key("last_heartbeat_ms");
            if (n.last_heartbeat) {
                w.number(ms(*n.last_heartbeat));
            } else {
                w.null();
            }
            w.end_object();
        }
        w.end_array().end_object();
    });
    co_return result<void>{};
}

}  // namespace registry::protocol
