// The notifications module (docs/protocol.md, "Notifications"): the dead
// letters of the webhooks, for admins only (they hold other identities'
// events): notification_dead_letters, _retry and _clear; and the webhooks
// identities make for themselves: webhook_create, webhook_list, webhook_delete.
#include "../request_context.hpp"
#include "../server_impl.hpp"
#include "codec/json_writer.hpp"

#include <registry/notifier.hpp>
#include <registry/protocol/notifications.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace registry::protocol {

namespace {

struct dead_letters_params {
    static constexpr std::string_view action = "notification_dead_letters";
    std::string webhook;
    std::uint32_t limit = 100;
};

struct retry_params {
    static constexpr std::string_view action = "notification_dead_letters_retry";
    std::string webhook;
    std::vector<std::string> ids;
};

struct clear_params {
    static constexpr std::string_view action = "notification_dead_letters_clear";
    std::string webhook;
    std::vector<std::string> ids;
};

struct create_params {
    static constexpr std::string_view action = "webhook_create";
    webhook w;
    std::vector<std::string> events;
    std::uint64_t timeout_ms = 5000;
};

struct list_params {
    static constexpr std::string_view action = "webhook_list";
};

struct delete_params {
    static constexpr std::string_view action = "webhook_delete";
    std::string name;
};

}  // namespace

}  // namespace registry::protocol

namespace registry::detail {

using namespace protocol;

static bool read_params(decoder& d, const params_element& e, const path& at, dead_letters_params& p) {
    static constexpr std::string_view names[] = {"webhook", "limit"};
    members m{at, names};
    if (!open(d, e, m) || !optional(d, m, "webhook", p.webhook) || !optional(d, m, "limit", p.limit)) return false;
    if (p.limit < 1 || p.limit > 1000) return d.fail(at.member("limit"), "must be 1-1000");
    return true;
}

static bool read_ids(decoder& d, const members& m, const path& at, std::vector<std::string>& ids) {
    if (!optional(d, m, "ids", ids)) return false;
    if (ids.size() > 1000) return d.fail(at.member("ids"), "must have at most 1000 items");
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, retry_params& p) {
    static constexpr std::string_view names[] = {"webhook", "ids"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "webhook", p.webhook) && read_ids(d, m, at, p.ids);
}

static bool read_params(decoder& d, const params_element& e, const path& at, clear_params& p) {
    static constexpr std::string_view names[] = {"webhook", "ids"};
    members m{at, names};
    if (!open(d, e, m) || !optional(d, m, "webhook", p.webhook) || !read_ids(d, m, at, p.ids)) return false;
    if (p.webhook.empty() && !p.ids.empty()) return d.fail(at.member("ids"), "needs a webhook");
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, create_params& p) {
    static constexpr std::string_view names[] = {"name",   "url",        "events",      "services",
                                                 "secret", "timeout_ms", "max_attempts"};
    members m{at, names};
    if (!open(d, e, m) || !required(d, m, "name", p.w.name) || !required(d, m, "url", p.w.url) ||
        !optional(d, m, "events", p.events) || !optional(d, m, "services", p.w.services) ||
        !optional(d, m, "secret", p.w.secret) || !optional(d, m, "timeout_ms", p.timeout_ms) ||
        !optional(d, m, "max_attempts", p.w.max_attempts)) {
        return false;
    }
    if (p.w.url.size() > 2048) return d.fail(at.member("url"), "must be at most 2048 bytes");
    if (p.w.secret.size() > 1024) return d.fail(at.member("secret"), "must be at most 1024 bytes");
    if (p.events.size() > 64) return d.fail(at.member("events"), "must have at most 64 items");
    if (p.w.services.size() > 64) return d.fail(at.member("services"), "must have at most 64 items");
    const path events_at = at.member("events");
    for (std::size_t i = 0; i < p.events.size(); ++i) {
        auto t = parse_event_type(p.events[i]);
        if (!t) return d.fail(events_at.element(i), "is not an event type");
        p.w.events.insert(*t);
    }
    if (p.timeout_ms > 300000) return d.fail(at.member("timeout_ms"), "must be 1-300000");
    p.w.timeout = milliseconds{static_cast<std::int64_t>(p.timeout_ms)};
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, list_params&) {
    members m{at, {}};
    return open(d, e, m);
}

static bool read_params(decoder& d, const params_element& e, const path& at, delete_params& p) {
    static constexpr std::string_view names[] = {"name"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "name", p.name);
}

}  // namespace registry::detail

namespace registry::protocol {

namespace {

struct notifications_module final : module {
    explicit notifications_module(notifier& n) : notifications(n) {}
    notifier& notifications;
};

result<void> admin_only(const request_context& ctx) {
    if (ctx.caller().admin) return {};
    return fail(errc::forbidden, "only an admin may see or change the notifications' dead letters");
}

task<result<void>> on(notifications_module& m, request_context& ctx, dead_letters_params& p) {
    if (auto ok = admin_only(ctx); !ok) co_return ok;
    ctx.set_target(p.webhook);
    const auto letters = m.notifications.dead_letters(p.webhook);
    std::size_t body_bytes = 0;
    const std::size_t shown = std::min<std::size_t>(letters.size(), p.limit);
    for (std::size_t i = 0; i < shown; ++i) body_bytes += letters[i].body ? letters[i].body->size() : 0;
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("total").number(letters.size()).key("dead_letters").begin_array();
        for (std::size_t i = 0; i < shown; ++i) {
            const dead_letter& d = letters[i];
            w.begin_object()
                .key("webhook").string(d.webhook)
                .key("id").string(d.id)
                .key("revision").number(d.revision)
                .key("event").string(d.event)
                .key("reason").string(d.reason)
                .key("attempts").number(d.attempts)
                .key("last_error").string(d.last_error)
                .key("failed_at").number(d.failed_at.time_since_epoch().count())
                .key("body").string(d.body ? std::string_view(*d.body) : std::string_view{})
                .end_object();
        }
        w.end_array().end_object();
    }, 200 + shown * 300 + body_bytes * 2);
    co_return result<void>{};
}

task<result<void>> on(notifications_module& m, request_context& ctx, retry_params& p) {
    if (auto ok = admin_only(ctx); !ok) co_return ok;
    ctx.set_target(p.webhook);
    auto retried = co_await m.notifications.retry_dead_letters(p.webhook, std::move(p.ids));
    if (!retried) co_return unexpected{retried.err()};
    ctx.reply([&](detail::json_writer& w) { w.begin_object().key("retried").number(*retried).end_object(); });
    co_return result<void>{};
}

task<result<void>> on(notifications_module& m, request_context& ctx, clear_params& p) {
    if (auto ok = admin_only(ctx); !ok) co_return ok;
    ctx.set_target(p.webhook);
    auto cleared = co_await m.notifications.clear_dead_letters(p.webhook, std::move(p.ids));
    if (!cleared) co_return unexpected{cleared.err()};
    ctx.reply([&](detail::json_writer& w) { w.begin_object().key("cleared").number(*cleared).end_object(); });
    co_return result<void>{};
}

void write_webhook(detail::json_writer& w, const webhook& h) {
    w.begin_object().key("name").string(h.name).key("url").string(h.url).key("owner");
    if (h.owner.empty()) {
        w.null();
    } else {
        w.string(h.owner);
    }
    w.key("events").begin_array();
    for (auto t : h.events) w.string(to_string(t));
    w.end_array().key("services").begin_array();
    for (const auto& s : h.services) w.string(s);
    w.end_array()
        .key("signed").boolean(!h.secret.empty())
        .key("timeout_ms").number(h.timeout.count())
        .key("max_attempts").number(h.max_attempts)
        .end_object();
}

task<result<void>> on(notifications_module& m, request_context& ctx, create_params& p) {
    ctx.set_target(p.w.name);
    const bool is_signed = !p.w.secret.empty();
    auto made = co_await m.notifications.create_webhook(std::move(p.w), ctx.caller());
    if (!made) co_return unexpected{made.err()};
    if (is_signed) made->secret = "set";  // for "signed"; the secret itself is never sent back
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("webhook");
        write_webhook(w, *made);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(notifications_module& m, request_context& ctx, list_params&) {
    const auto hooks = m.notifications.webhooks(ctx.caller());
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("webhooks").begin_array();
        for (const auto& h : hooks) write_webhook(w, h);
        w.end_array().end_object();
    }, 200 + hooks.size() * 400);
    co_return result<void>{};
}

task<result<void>> on(notifications_module& m, request_context& ctx, delete_params& p) {
    ctx.set_target(p.name);
    auto deleted = co_await m.notifications.delete_webhook(p.name, ctx.caller());
    if (!deleted) co_return unexpected{deleted.err()};
    ctx.reply([&](detail::json_writer& w) { w.begin_object().key("name").string(p.name).end_object(); });
    co_return result<void>{};
}

}  // namespace

void add_notification_actions(server& srv, notifier& n) {
    auto& shared = srv.internals();
    auto m = std::make_unique<notifications_module>(n);
    using M = notifications_module;
    using detail::read_params;
    // discover: who may read the registry may ask; the handler lets admins only.
    shared.actions.add(make_action<M, dead_letters_params, &read_params, &on>(permission_family::discover, m.get()));
    shared.actions.add(make_action<M, retry_params, &read_params, &on>(permission_family::discover, m.get()));
    shared.actions.add(make_action<M, clear_params, &read_params, &on>(permission_family::discover, m.get()));
    // A webhook is a subscription that outlives the connection: who may follow the registry may make one.
    shared.actions.add(make_action<M, create_params, &read_params, &on>(permission_family::discover, m.get()));
    shared.actions.add(make_action<M, list_params, &read_params, &on>(permission_family::discover, m.get()));
    shared.actions.add(make_action<M, delete_params, &read_params, &on>(permission_family::discover, m.get()));
    shared.own(std::move(m));
}

}  // namespace registry::protocol
