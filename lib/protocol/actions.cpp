// The actions of docs/protocol.md, each turned into registry calls and a
// response. Handlers receive fully decoded parameters and may suspend while
// the store commits; the registry numbers and orders the changes.
#include "session.hpp"

#include "registration_rules.hpp"
#include "response.hpp"
#include "service_writer.hpp"

namespace registry::protocol {

namespace {

std::int64_t ms(time_point t) { return t.time_since_epoch().count(); }

void write_services(detail::json_writer& w, const std::vector<service_ptr>& services) {
    w.begin_array();
    for (const auto& s : services) write_service(w, *s);
    w.end_array();
}

void write_grant(detail::json_writer& w, const lease_grant& g) {
    w.key("lease_id").number(g.lease_id)
        .key("instance_id").string(g.instance_id)
        .key("ttl_seconds").number(g.ttl.count())
        .key("expires_at_ms").number(ms(g.expires_at));
}

}  // namespace

task<result<void>> session::on(call& c, register_params& p) {
    // The registry checks this too, but names fields relative to params.
    if (auto problems = detail::check_registration(p.reg, reg().options()); !problems.empty()) {
        std::string message;
        for (const auto& problem : problems) {
            if (!message.empty()) message += "; ";
            message += "params.";
            message += problem;
        }
        co_return fail(errc::invalid_request, std::move(message));
    }
    auto grant = co_await reg().register_service(std::move(p.reg), id_);
    if (!grant) co_return unexpected{grant.err()};
    reply(c, [&](detail::json_writer& w) {
        w.begin_object();
        write_grant(w, *grant);
        w.key("revision").number(grant->revision).key("created").boolean(grant->created);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, keepalive_params& p) {
    auto grant = co_await reg().keepalive(p.lease_id, id_);
    if (!grant) co_return unexpected{grant.err()};
    reply(c, [&](detail::json_writer& w) {
        w.begin_object();
        write_grant(w, *grant);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, deregister_params& p) {
    auto gone = co_await reg().deregister(p.instance_id);
    if (!gone) co_return unexpected{gone.err()};
    reply(c, [&](detail::json_writer& w) {
        w.begin_object()
            .key("instance_id")
            .string(gone->service->instance_id)
            .key("revision")
            .number(gone->revision)
            .end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, get_service_params& p) {
    if (!p.by_name) {
        auto s = reg().find(p.key);
        if (!s) co_return fail(errc::not_found, "no instance '" + p.key + "'");
        reply(
            c,
            [&](detail::json_writer& w) {
                w.begin_object().key("service");
                write_service(w, *s);
                w.end_object();
            },
            16 + service_json_capacity(*s));
        co_return result<void>{};
    }
    service_filter by_name;
    by_name.name = p.key;
    auto services = reg().list(by_name);
    if (services.empty()) co_return fail(errc::not_found, "no instance of service '" + p.key + "'");
    reply(c, [&](detail::json_writer& w) {
        w.begin_object().key("services");
        write_services(w, services);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, list_services_params& p) {
    auto services = reg().list(p.filter);
    reply(c, [&](detail::json_writer& w) {
        w.begin_object().key("revision").number(reg().revision()).key("services");
        write_services(w, services);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, list_endpoints_params& p) {
    auto endpoints = reg().endpoints(p.filter);
    reply(c, [&](detail::json_writer& w) {
        w.begin_object().key("revision").number(reg().revision()).key("endpoints").begin_array();
        for (const auto& [s, ep] : endpoints) {
            w.begin_object()
                .key("service").string(s->name)
                .key("instance_id").string(s->instance_id)
                .key("state").string(to_string(s->state))
                .key("name").string(ep->name)
                .key("address").string(ep->address)
                .key("port").number(ep->port)
                .key("protocol").string(ep->protocol)
                .end_object();
        }
        w.end_array().end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, set_state_params& p) {
    // Changes are applied in memory before the store commits, so this is the
    // state the change starts from, even with other requests in flight.
    auto before = reg().find(p.instance_id);
    const bool changed = before && before->state != p.state;
    auto after = co_await reg().set_state(p.instance_id, p.state, std::move(p.reason));
    if (!after) co_return unexpected{after.err()};
    const service_instance& s = **after;
    reply(c, [&](detail::json_writer& w) {
        w.begin_object().key("changed").boolean(changed).key("revision").number(s.modified_revision).key("service");
        write_service(w, s);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, subscribe_params& p) {
    const std::size_t max = srv_.lims().max_subscriptions;
    if (subscriptions_.size() >= max) {
        co_return fail(errc::limit_exceeded, "at most " + std::to_string(max) + " subscriptions per connection");
    }
    std::string id = "s" + std::to_string(++subscriptions_started_);
    std::stop_source stop;
    p.watch.stop = stop.get_token();
    // Lazy: the watch registers (and takes its snapshot) when the pump starts,
    // right after the response, so the response precedes every event.
    auto events = reg().watch(std::move(p.watch));
    const bool sent = reply(c, [&](detail::json_writer& w) {
        w.begin_object().key("subscription").string(id).key("revision").number(reg().revision()).end_object();
    });
    if (sent) start_subscription(std::move(id), std::move(events), std::move(stop));
    co_return result<void>{};
}

task<result<void>> session::on(call& c, unsubscribe_params& p) {
    auto it = subscriptions_.find(p.subscription);
    if (it == subscriptions_.end()) co_return fail(errc::not_found, "no subscription '" + p.subscription + "'");
    std::stop_source stop = std::move(it->second);
    subscriptions_.erase(it);
    stop.request_stop();  // its pump has finished when this returns
    reply(c, [&](detail::json_writer& w) { w.begin_object().key("subscription").string(p.subscription).end_object(); });
    co_return result<void>{};
}

}  // namespace registry::protocol
