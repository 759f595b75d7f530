// The actions of docs/protocol.md, each turned into registry calls and a
// response. Handlers receive fully decoded parameters and may suspend while
// the store commits; the registry numbers and orders the changes.
#include "session.hpp"

#include "codec/service_record.hpp"
#include "codec/time.hpp"
#include "registration_rules.hpp"
#include "response.hpp"
#include "server_impl.hpp"

#include <algorithm>

namespace registry::protocol {

using detail::ms;

namespace {

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
    p.reg.origin = source_;  // for the per-address quota
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
            16 + detail::service_json_capacity(*s));
        co_return result<void>{};
    }
    // By name: every instance of the name, in pages like list_services.
    std::vector<service_ptr> services;
    if (!p.page.continue_token) {
        service_filter by_name;
        by_name.name = p.key;
        services = reg().list(by_name);
        if (services.empty()) co_return fail(errc::not_found, "no instance of service '" + p.key + "'");
    }
    co_return send_page<service_ptr>(
        c, p.action, p.page, "services", [&] { return std::move(services); },
        [](detail::json_writer& w, const service_ptr& s) { write_service(w, *s); });
}

template <typename Item, typename WriteItem>
result<void> session::send_page(call& c, std::string_view action, const page_params& page, std::string_view key,
                                const std::function<std::vector<Item>()>& all, WriteItem&& write_item) {
    auto& listings = srv_.internals().listings;
    const std::size_t max = srv_.lims().max_page_items;
    const std::size_t limit = page.limit ? std::min<std::uint64_t>(*page.limit, max) : max;

    std::uint64_t revision = 0;
    std::vector<Item> fresh;
    const std::vector<Item>* items = nullptr;
    std::size_t offset = 0;
    std::uint64_t listing_id = 0;
    if (page.continue_token) {
        auto at = listing_cache::parse(*page.continue_token);
        if (!at) return fail(errc::invalid_request, "params.continue: not a continue token of this server");
        auto* l = listings.find(*at, id_);
        if (!l) {
            return fail(errc::continue_expired,
                        "the listing at revision " + std::to_string(at->revision) +
                            " is no longer held (finished, evicted by newer listings, or of another connection): "
                            "list again without continue");
        }
        auto* held = std::get_if<std::vector<Item>>(&l->found);
        if (!held || l->action != action || at->offset >= held->size()) {
            return fail(errc::invalid_request, "params.continue: not a continue token of this action");
        }
        revision = l->revision;
        items = held;
        offset = at->offset;
        listing_id = l->id;
    } else {
        revision = reg().revision();
        fresh = all();
        items = &fresh;
    }

    const std::size_t total = items->size();
    const std::size_t end = offset + std::min(limit, total - offset);
    const bool more = end < total;
    reply(c, [&](detail::json_writer& w) {
        w.begin_object().key("revision").number(revision).key(key).begin_array();
        for (std::size_t i = offset; i < end; ++i) write_item(w, (*items)[i]);
        w.end_array();
        if (more) {
            if (listing_id == 0) listing_id = listings.open(id_, action, revision, std::move(fresh));
            w.key("continue").string(listing_cache::token(listing_id, revision, end));
            w.key("remaining").number(static_cast<std::uint64_t>(total - end));
        }
        w.end_object();
    });
    // `fresh` may have moved into the cache above: `items` is not used again.
    if (!more && listing_id != 0) listings.close(listing_id);
    return result<void>{};
}

task<result<void>> session::on(call& c, list_services_params& p) {
    co_return send_page<service_ptr>(
        c, p.action, p.page, "services", [&] { return reg().list(p.filter); },
        [](detail::json_writer& w, const service_ptr& s) { write_service(w, *s); });
}

task<result<void>> session::on(call& c, list_endpoints_params& p) {
    co_return send_page<endpoint_view>(
        c, p.action, p.page, "endpoints", [&] { return reg().endpoints(p.filter); },
        [](detail::json_writer& w, const endpoint_view& e) {
            const service_instance& s = *e.service;
            w.begin_object()
                .key("service").string(s.name)
                .key("instance_id").string(s.instance_id)
                .key("state").string(to_string(s.state))
                .key("name").string(e.ep->name)
                .key("address").string(e.ep->address)
                .key("port").number(e.ep->port)
                .key("protocol").string(e.ep->protocol)
                .end_object();
        });
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
    if (auto allowed = may_subscribe(); !allowed) co_return allowed;
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
    auto stop = forget_subscription(p.subscription);
    if (!stop) co_return fail(errc::not_found, "no subscription '" + p.subscription + "'");
    stop->request_stop();  // its pump has finished when this returns
    reply(c, [&](detail::json_writer& w) { w.begin_object().key("subscription").string(p.subscription).end_object(); });
    co_return result<void>{};
}

}  // namespace registry::protocol
