// The services module: registration, discovery and subscriptions
// (docs/protocol.md, "Actions"), each action's params, its reader and its
// handler, registered into the dispatch table. Part of the core: it uses the
// registry only. Handlers receive fully decoded params and may suspend while
// the store commits; the registry numbers and orders the changes.
#include "actions.hpp"

#include "../lease_visibility.hpp"
#include "../listing_cache.hpp"
#include "../request_context.hpp"
#include "codec/service_record.hpp"
#include "codec/time.hpp"

#include <registry/registry.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace registry::protocol {

namespace {

struct register_params {
    static constexpr std::string_view action = "register";
    registration reg;
};

struct keepalive_params {
    static constexpr std::string_view action = "keepalive";
    std::uint64_t lease_id = 0;
};

struct deregister_params {
    static constexpr std::string_view action = "deregister";
    std::string instance_id;
};


// A listing's page (docs/protocol.md, "Limits"): the first page has the
// filters, the next ones only the token the previous page gave.
struct page_params {
    std::optional<std::uint64_t> limit;  // at most limits::max_page_items whatever is asked
    std::optional<std::string> continue_token;
};

struct get_service_params {
    static constexpr std::string_view action = "get_service";
    std::string key;       // an instance id, or a service name when by_name
    bool by_name = false;  // also with page.continue_token (key then empty)
    page_params page;      // by_name only
    std::optional<health_filter> health;  // by_name only
};

struct list_services_params {
    static constexpr std::string_view action = "list_services";
    service_filter filter;
    page_params page;
};

struct list_endpoints_params {
    static constexpr std::string_view action = "list_endpoints";
    endpoint_filter filter;
    page_params page;
};

struct set_state_params {
    static constexpr std::string_view action = "set_state";
    std::string instance_id;
    service_state state = service_state::registered;
    std::string reason;
};

struct report_health_params {
    static constexpr std::string_view action = "report_health";
    std::string instance_id;
    check_report report;  // lease_id always set
};

struct subscribe_params {
    static constexpr std::string_view action = "subscribe";
    watch_options watch;  // everything but the stop token
};

struct unsubscribe_params {
    static constexpr std::string_view action = "unsubscribe";
    std::string subscription;
};

}  // namespace

}  // namespace registry::protocol

namespace registry::detail {

using namespace protocol;  // the params types

static bool read_params(decoder& d, const params_element& e, const path& at, register_params& p) {
    static constexpr std::string_view names[] = {"service", "ttl_seconds", "session_bound", "lease_id"};
    members m{at, names};
    if (!open(d, e, m)) return false;
    auto service = m.get("service");
    if (!service) return d.fail(at.member("service"), "is required");
    return read_service(d, *service, at.member("service"), service_form::registration, p.reg.service) &&
           optional(d, m, "ttl_seconds", p.reg.ttl) && optional(d, m, "session_bound", p.reg.session_bound) &&
           optional(d, m, "lease_id", p.reg.lease_id);
}

static bool read_params(decoder& d, const params_element& e, const path& at, keepalive_params& p) {
    static constexpr std::string_view names[] = {"lease_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "lease_id", p.lease_id);
}

static bool read_params(decoder& d, const params_element& e, const path& at, deregister_params& p) {
    static constexpr std::string_view names[] = {"instance_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "instance_id", p.instance_id);
}

// limit and continue; with continue, the filters are the first page's and
// may not be given again.
static bool read_page(decoder& d, const members& m, page_params& page) {
    if (!optional(d, m, "limit", page.limit) || !optional(d, m, "continue", page.continue_token)) return false;
    if (page.limit && *page.limit == 0) return d.fail(m.at.member("limit"), "must be at least 1");
    if (!page.continue_token) return true;
    for (std::size_t i = 0; i < m.names.size(); ++i) {
        if (m.present[i] && m.names[i] != "limit" && m.names[i] != "continue") {
            return d.fail(m.at.member(m.names[i]), "not allowed with continue (the first page's filters apply)");
        }
    }
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, get_service_params& p) {
    static constexpr std::string_view names[] = {"instance_id", "name", "limit", "continue", "health"};
    members m{at, names};
    if (!open(d, e, m)) return false;
    if (m.get("continue")) {  // the next page of a by-name answer
        p.by_name = true;
        return read_page(d, m, p.page);
    }
    p.by_name = m.get("name").has_value();
    if (p.by_name == m.get("instance_id").has_value()) {
        return d.fail(at, "exactly one of instance_id and name is required");
    }
    if (!p.by_name) {  // one instance: no page to read
        if (m.get("limit")) return d.fail(at.member("limit"), "only with name");
        if (m.get("health")) return d.fail(at.member("health"), "only with name");
        return required(d, m, "instance_id", p.key);
    }
    return required(d, m, "name", p.key) && optional(d, m, "health", p.health) && read_page(d, m, p.page);
}

static bool read_params(decoder& d, const params_element& e, const path& at, list_services_params& p) {
    static constexpr std::string_view names[] = {"name", "version", "state", "host", "metadata", "health", "limit", "continue"};
    members m{at, names};
    auto& f = p.filter;
    return open(d, e, m) && optional(d, m, "name", f.name) && optional(d, m, "version", f.version) &&
           optional(d, m, "state", f.state) && optional(d, m, "host", f.host) &&
           optional(d, m, "metadata", f.metadata) && optional(d, m, "health", f.health) && read_page(d, m, p.page);
}

static bool read_params(decoder& d, const params_element& e, const path& at, list_endpoints_params& p) {
    static constexpr std::string_view names[] = {"service", "endpoint", "protocol", "health", "limit", "continue"};
    members m{at, names};
    auto& f = p.filter;
    return open(d, e, m) && optional(d, m, "service", f.service) && optional(d, m, "endpoint", f.endpoint) &&
           optional(d, m, "protocol", f.protocol) && optional(d, m, "health", f.health) && read_page(d, m, p.page);
}

static bool read_params(decoder& d, const params_element& e, const path& at, set_state_params& p) {
    static constexpr std::string_view names[] = {"instance_id", "state", "reason"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "instance_id", p.instance_id) && required(d, m, "state", p.state) &&
           optional(d, m, "reason", p.reason);
}

// status: passing, warning or critical (passing is the status healthy).
static bool read_params(decoder& d, const params_element& e, const path& at, report_health_params& p) {
    static constexpr std::string_view names[] = {"lease_id", "instance_id", "check", "status", "output"};
    members m{at, names};
    std::string status;
    auto& r = p.report;
    if (!open(d, e, m) || !required(d, m, "lease_id", r.lease_id.emplace()) ||
        !required(d, m, "instance_id", p.instance_id) || !optional(d, m, "check", r.check) ||
        !required(d, m, "status", status) || !optional(d, m, "output", r.output)) {
        return false;
    }
    if (status == "passing") {
        r.status = health_status::healthy;
    } else if (status == "warning") {
        r.status = health_status::warning;
    } else if (status == "critical") {
        r.status = health_status::critical;
    } else {
        return d.fail(at.member("status"), "must be one of passing, warning, critical");
    }
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, subscribe_params& p) {
    static constexpr std::string_view names[] = {"events", "services", "from_revision", "snapshot"};
    members m{at, names};
    auto& w = p.watch;
    return open(d, e, m) && optional(d, m, "events", w.types) && optional(d, m, "services", w.services) &&
           optional(d, m, "from_revision", w.from_revision) && optional(d, m, "snapshot", w.snapshot);
}

static bool read_params(decoder& d, const params_element& e, const path& at, unsubscribe_params& p) {
    static constexpr std::string_view names[] = {"subscription"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "subscription", p.subscription);
}

}  // namespace registry::detail

namespace registry::protocol {

namespace {

using detail::ms;

struct services_module final : module {
    services_module(class registry& r, listing_cache& l, const limits& lim) : reg(r), listings(l), lims(lim) {}

    class registry& reg;
    listing_cache& listings;
    const limits& lims;
};

void write_grant(detail::json_writer& w, const lease_grant& g) {
    w.key("lease_id").number(g.lease_id)
        .key("instance_id").string(g.instance_id)
        .key("ttl_seconds").number(g.ttl.count())
        .key("expires_at_ms").number(ms(g.expires_at));
}

// During a store outage reads are served from memory: they say since when
// what they show may be behind (docs/protocol.md, "Store outages").
void write_staleness(detail::json_writer& w, const registry& reg) {
    if (reg.available()) return;
    const auto store = reg.store_status();
    if (store.current == store_condition::state::unreachable) w.key("stale_since_ms").number(ms(store.since));
}

// Or, with limits::serve_stale_reads off, they are refused meanwhile.
std::optional<error> refuse_stale_read(const services_module& m) {
    if (m.lims.serve_stale_reads || m.reg.available()) return std::nullopt;
    const auto store = m.reg.store_status();
    if (store.current != store_condition::state::unreachable) return std::nullopt;
    return error{errc::unavailable, "the store is unreachable (" + store.problem +
                                        "): reads are refused until it is back (store.stale_reads: refuse)"};
}

// One page of a listing (list_services, list_endpoints, get_service by
// name): the first from `all()`, found now; a next one from the listing its
// token names. `write_item(w, item)` writes one element of the `key` array.
template <typename Item, typename All, typename WriteItem>
result<void> send_page(services_module& m, request_context& ctx, std::string_view action, const page_params& page,
                       std::string_view key, All&& all, WriteItem&& write_item) {
    auto& listings = m.listings;
    const std::size_t max = m.lims.max_page_items;
    const std::size_t limit = page.limit ? std::min<std::uint64_t>(*page.limit, max) : max;

    std::uint64_t revision = 0;
    std::vector<Item> fresh;
    const std::vector<Item>* items = nullptr;
    std::size_t offset = 0;
    std::uint64_t listing_id = 0;
    if (page.continue_token) {
        auto at = listing_cache::parse(*page.continue_token);
        if (!at) return fail(errc::invalid_request, "params.continue: not a continue token of this server");
        auto* l = listings.find(*at, ctx.connection_id());
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
        revision = m.reg.revision();
        fresh = all();
        items = &fresh;
    }

    const std::size_t total = items->size();
    const std::size_t end = offset + std::min(limit, total - offset);
    const bool more = end < total;
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("revision").number(revision).key(key).begin_array();
        for (std::size_t i = offset; i < end; ++i) write_item(w, (*items)[i]);
        w.end_array();
        if (more) {
            if (listing_id == 0) listing_id = listings.open(ctx.connection_id(), action, revision, std::move(fresh));
            w.key("continue").string(listing_cache::token(listing_id, revision, end));
            w.key("remaining").number(static_cast<std::uint64_t>(total - end));
        }
        write_staleness(w, m.reg);
        w.end_object();
    });
    // `fresh` may have moved into the cache above: `items` is not used again.
    if (!more && listing_id != 0) listings.close(listing_id);
    return result<void>{};
}

task<result<void>> on(services_module& m, request_context& ctx, register_params& p) {
    ctx.set_target(p.reg.service.instance_id.empty() ? p.reg.service.name : p.reg.service.instance_id);
    p.reg.origin = ctx.source();  // for the per-address quota
    auto grant = co_await m.reg.register_service(std::move(p.reg), ctx.connection_id(), ctx.caller());
    if (!grant) co_return unexpected{grant.err()};
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object();
        write_grant(w, *grant);
        w.key("revision").number(grant->revision).key("created").boolean(grant->created);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(services_module& m, request_context& ctx, keepalive_params& p) {
    ctx.set_target("lease " + std::to_string(p.lease_id));
    auto grant = co_await m.reg.keepalive(p.lease_id, ctx.connection_id(), ctx.caller());
    if (!grant) co_return unexpected{grant.err()};
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object();
        write_grant(w, *grant);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(services_module& m, request_context& ctx, deregister_params& p) {
    ctx.set_target(p.instance_id);
    auto gone = co_await m.reg.deregister(p.instance_id, "deregistered", ctx.caller());
    if (!gone) co_return unexpected{gone.err()};
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object()
            .key("instance_id")
            .string(gone->service->instance_id)
            .key("revision")
            .number(gone->revision)
            .end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(services_module& m, request_context& ctx, get_service_params& p) {
    if (auto refused = refuse_stale_read(m)) co_return unexpected{std::move(*refused)};
    if (m.reg.has_read_barrier()) {
        auto synced = co_await m.reg.read_barrier();
        if (!synced) co_return unexpected{synced.err()};
    }
    if (!p.by_name) {
        auto s = m.reg.find(p.key);
        if (!s) co_return fail(errc::not_found, "no instance '" + p.key + "'");
        ctx.reply(
            [&](detail::json_writer& w) {
                w.begin_object().key("service");
                write_service(w, *s, sees_lease_id(ctx.caller(), *s));
                write_staleness(w, m.reg);
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
        by_name.health = p.health;
        services = m.reg.list(by_name);
        if (services.empty()) {
            co_return fail(errc::not_found, p.health ? "no instance of service '" + p.key + "' is " +
                                                           std::string(to_string(*p.health))
                                                     : "no instance of service '" + p.key + "'");
        }
    }
    co_return send_page<service_ptr>(
        m, ctx, p.action, p.page, "services", [&] { return std::move(services); },
        [&](detail::json_writer& w, const service_ptr& s) { write_service(w, *s, sees_lease_id(ctx.caller(), *s)); });
}

task<result<void>> on(services_module& m, request_context& ctx, list_services_params& p) {
    if (auto refused = refuse_stale_read(m)) co_return unexpected{std::move(*refused)};
    if (m.reg.has_read_barrier()) {
        auto synced = co_await m.reg.read_barrier();
        if (!synced) co_return unexpected{synced.err()};
    }
    co_return send_page<service_ptr>(
        m, ctx, p.action, p.page, "services", [&] { return m.reg.list(p.filter); },
        [&](detail::json_writer& w, const service_ptr& s) { write_service(w, *s, sees_lease_id(ctx.caller(), *s)); });
}

task<result<void>> on(services_module& m, request_context& ctx, list_endpoints_params& p) {
    if (auto refused = refuse_stale_read(m)) co_return unexpected{std::move(*refused)};
    if (m.reg.has_read_barrier()) {
        auto synced = co_await m.reg.read_barrier();
        if (!synced) co_return unexpected{synced.err()};
    }
    co_return send_page<endpoint_view>(
        m, ctx, p.action, p.page, "endpoints", [&] { return m.reg.endpoints(p.filter); },
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

task<result<void>> on(services_module& m, request_context& ctx, set_state_params& p) {
    ctx.set_target(p.instance_id);
    // Changes are applied in memory before the store commits, so this is the
    // state the change starts from, even with other requests in flight.
    auto before = m.reg.find(p.instance_id);
    const bool changed = before && before->state != p.state;
    auto after = co_await m.reg.set_state(p.instance_id, p.state, std::move(p.reason), ctx.caller());
    if (!after) co_return unexpected{after.err()};
    const service_instance& s = **after;
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("changed").boolean(changed).key("revision").number(s.modified_revision).key("service");
        write_service(w, s, sees_lease_id(ctx.caller(), s));
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(services_module& m, request_context& ctx, report_health_params& p) {
    auto after = co_await m.reg.record_check(p.instance_id, std::move(p.report));
    if (!after) co_return unexpected{after.err()};
    const service_instance& s = **after;
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("revision").number(s.modified_revision).key("health");
        write_health(w, s.health);
        w.key("state").string(to_string(s.state)).end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(services_module& m, request_context& ctx, subscribe_params& p) {
    // On a replica: its snapshot, or the history a resume replays, reaches
    // at least every revision acknowledged anywhere before this request.
    if (m.reg.has_read_barrier()) {
        auto synced = co_await m.reg.read_barrier();
        if (!synced) co_return unexpected{synced.err()};
    }
    // Lazy: the watch registers (and takes its snapshot) when the pump starts,
    // right after the response, so the response precedes every event.
    co_return ctx.stream(
        [&](std::stop_token stop) {
            p.watch.stop = std::move(stop);
            p.watch.wire = true;  // the session sends every event's wire bytes
            return m.reg.watch(std::move(p.watch));
        },
        [&](detail::json_writer& w) { w.key("revision").number(m.reg.revision()); });
}

task<result<void>> on(services_module&, request_context& ctx, unsubscribe_params& p) {
    auto stop = ctx.forget_subscription(p.subscription);
    if (!stop) co_return fail(errc::not_found, "no subscription '" + p.subscription + "'");
    stop->request_stop();  // its pump has finished when this returns
    ctx.reply([&](detail::json_writer& w) { w.begin_object().key("subscription").string(p.subscription).end_object(); });
    co_return result<void>{};
}

}  // namespace

std::unique_ptr<module> add_services_actions(dispatch_table& t, class registry* reg, listing_cache* listings,
                                             const limits* lims) {
    std::unique_ptr<services_module> m;
    if (reg) m = std::make_unique<services_module>(*reg, *listings, *lims);
    using M = services_module;
    using enum permission_family;
    using detail::read_params;
    t.add(make_action<M, register_params, &read_params, &on>(register_, m.get()));
    t.add(make_action<M, keepalive_params, &read_params, &on>(register_, m.get()));
    t.add(make_action<M, deregister_params, &read_params, &on>(register_, m.get()));
    t.add(make_action<M, set_state_params, &read_params, &on>(register_, m.get()));
    t.add(make_action<M, report_health_params, &read_params, &on>(register_, m.get()));
    t.add(make_action<M, get_service_params, &read_params, &on>(discover, m.get()));
    t.add(make_action<M, list_services_params, &read_params, &on>(discover, m.get()));
    t.add(make_action<M, list_endpoints_params, &read_params, &on>(discover, m.get()));
    t.add(make_action<M, subscribe_params, &read_params, &on>(discover, m.get()));
    t.add(make_action<M, unsubscribe_params, &read_params, &on>(discover, m.get()));
    return m;
}

}  // namespace registry::protocol
