// The notifier (notifier.hpp): a watch of the registry that fills each
// webhook's outbox, and one delivery loop per webhook that empties it.
#include <registry/notifier.hpp>

#include "hmac_sha256.hpp"
#include "notify/outbox_records.hpp"
#include "protocol/event_encoder.hpp"

#include <registry/async_scope.hpp>
#include <registry/identity.hpp>
#include <registry/registry.hpp>

#include <algorithm>
#include <map>
#include <utility>

namespace registry {

using notify::entry_key;

namespace {

// The events a webhook may take: the registry's changes, not the watch's
// own items nor a request's stream.
bool is_change(event_type t) noexcept {
    switch (t) {
        case event_type::registry_loaded:
        case event_type::bookmark:
        case event_type::resync_required:
        case event_type::container_log:
        case event_type::image_pull_progress: return false;
        default: return true;
    }
}

// The service (or package) an event is about, if it names one.
std::optional<std::string_view> subject(const event& e) {
    if (e.service) return std::string_view(e.service->name);
    if (e.deployment) return std::string_view(e.deployment->package);
    return std::nullopt;
}

// The webhook's filter, and for an identity's webhook the identity's scope.
bool takes(const webhook& w, const identity& owner, const event& e) {
    if (!w.events.empty() && !w.events.contains(e.type)) return false;
    const auto name = subject(e);
    if (!w.owner.empty() && !owner.admin && (!name || !owner.may_name_service(*name))) return false;
    if (w.services.empty()) return true;
    if (!name) return false;
    return std::any_of(w.services.begin(), w.services.end(),
                       [&](const std::string& p) { return glob_match(p, *name); });
}

// {"webhook":"<name>","event":...,"revision":N,"data":{...}}: the protocol's
// event frame with the webhook's name where a subscription's id would be.
std::shared_ptr<const std::string> make_body(std::string_view webhook, const std::string& event_tail) {
    auto body = std::make_shared<std::string>();
    body->reserve(event_tail.size() + webhook.size() + 16);
    body->append("{\"webhook\":\"").append(webhook).append("\",").append(event_tail);
    return body;
}

}  // namespace

std::string webhook_signature(std::string_view secret, std::string_view body) {
    return "sha256=" + notify::to_hex(notify::hmac_sha256(secret, body));
}

std::vector<std::pair<std::string, std::string>> webhook_headers(const webhook_delivery& d, std::string_view secret,
                                                                  std::string_view body) {
    std::vector<std::pair<std::string, std::string>> h;
    h.emplace_back("Content-Type", "application/json");
    h.emplace_back("User-Agent", "registryd-webhooks");
    h.emplace_back("X-Registry-Webhook", d.webhook);
    h.emplace_back("X-Registry-Event", d.event);
    h.emplace_back("X-Registry-Revision", std::to_string(d.revision));
    h.emplace_back("X-Registry-Attempt", std::to_string(d.attempt));
    h.emplace_back("Idempotency-Key", d.webhook + "/" + d.id);
    if (!secret.empty()) h.emplace_back("X-Registry-Signature", webhook_signature(secret, body));
    return h;
}

milliseconds webhook_backoff(const notifier_options& o, std::uint32_t attempt, random_source& random) {
    std::int64_t d = o.initial_backoff.count();
    for (std::uint32_t i = 2; i < attempt && d < o.max_backoff.count(); ++i) d *= 2;
    d = std::min(d, o.max_backoff.count());
    std::byte r[4];
    random.fill(r);
    std::uint32_t x = 0;
    for (auto b : r) x = (x << 8) | std::to_integer<std::uint32_t>(b);
    const std::int64_t jitter = d / 2 == 0 ? 0 : static_cast<std::int64_t>(x % static_cast<std::uint64_t>(d / 2 + 1));
    return milliseconds{d - jitter};
}

struct notifier::impl {
    impl(registry& r, store& s, random_source& rnd, http_poster& p, notifier_options o)
        : reg(r), st(s), random(rnd), poster(p), opt(std::move(o)) {
        for (const auto& w : opt.webhooks) {
            auto h = std::make_shared<hook>();
            h->config = w;
            h->configured = true;
            hooks.push_back(std::move(h));
        }
    }

    struct entry {
        entry(std::string e, std::shared_ptr<const std::string> b) : event(std::move(e)), body(std::move(b)) {}
        std::string event;
        std::shared_ptr<const std::string> body;
        std::uint32_t attempts = 0;
        std::string last_error;
        time_point next_at{};
    };

    struct hook {
        webhook config;  // of a webhook no longer configured: only its name
        bool configured = false;
        identity owner;  // an identity's webhook: who made it, as it was then
        std::stop_source halt;  // its delivery loop ends (deleted, or the run ends)
        std::map<entry_key, entry> outbox;
        std::map<entry_key, dead_letter> dead;
        std::stop_source wake;  // requested when the outbox gains an entry
        std::uint64_t delivered = 0, retried = 0, dropped = 0;
    };

    hook* find(std::string_view name) { return find_shared(name).get(); }
    std::shared_ptr<hook> find_shared(std::string_view name) {
        for (auto& h : hooks) {
            if (h->config.name == name) return h;
        }
        return nullptr;
    }
    hook& find_or_add(std::string_view name) {
        if (hook* h = find(name)) return *h;
        auto h = std::make_shared<hook>();
        h->config.name = std::string(name);
        hooks.push_back(std::move(h));
        return *hooks.back();
    }

    // Adds a dead letter (and the writes that keep the list), dropping the
    // oldest beyond max_dead_letters.
    void add_dead(hook& h, entry_key key, dead_letter d, std::vector<store_mutation>& writes) {
        writes.push_back({notify::dead_key(h.config.name, key), notify::encode_dead(d)});
        h.dead[key] = std::move(d);
        ++h.dropped;
        while (h.dead.size() > opt.max_dead_letters) {
            writes.push_back({notify::dead_key(h.config.name, h.dead.begin()->first), std::nullopt});
            h.dead.erase(h.dead.begin());
        }
    }

    dead_letter make_dead(const hook& h, entry_key key, const entry& en, std::string reason) const {
        dead_letter d;
        d.webhook = h.config.name;
        d.id = notify::to_id(key);
        d.revision = key.revision;
        d.event = en.event;
        d.reason = std::move(reason);
        d.attempts = en.attempts;
        d.last_error = en.last_error;
        d.failed_at = reg.clk().now();
        d.body = en.body;
        return d;
    }

    // Started now (queued in revision order before its first suspension),
    // awaited by run() before it returns.
    void write(std::vector<store_mutation> mutations) {
        if (mutations.empty()) return;
        writes.spawn(commit(std::move(mutations)));
    }
    task<void> commit(std::vector<store_mutation> mutations) {
        auto done = co_await reg.record({}, std::move(mutations), "notification outbox");
        if (!done) ++store_failures;
    }

    void wake(hook& h) { h.wake.request_stop(); }

    // Takes the event into the outbox of every webhook whose filter takes it.
    void take(const event& e, std::uint32_t n) {
        std::shared_ptr<const std::string> tail;
        std::vector<store_mutation> mutations;
        const entry_key key{e.revision, n};
        for (auto& hp : hooks) {
            hook& h = *hp;
            if (!h.configured || !takes(h.config, h.owner, e)) continue;
            if (!tail) tail = protocol::event_wire(e);
            entry en{std::string(to_string(e.type)), make_body(h.config.name, *tail)};
            if (h.outbox.size() >= opt.max_outbox) {
                en.last_error = "the outbox holds max_outbox events";
                add_dead(h, key, make_dead(h, key, en, "outbox_full"), mutations);
                continue;
            }
            mutations.push_back({notify::outbox_key(h.config.name, key), notify::encode_outbox(en.event, *en.body)});
            h.outbox.emplace(key, std::move(en));
            woken.push_back(&h);
        }
        // Written before any delivery loop runs: its removal of the record
        // (after a 2xx) must be queued after the record.
        write(std::move(mutations));
        for (hook* h : woken) wake(*h);
        woken.clear();
    }

    // The watch fell behind and missed events: each webhook gets a dead
    // letter that says from where, so that nobody takes silence for none.
    void missed(const event& e) {
        std::vector<store_mutation> mutations;
        const entry_key key{e.revision, 0};
        for (auto& hp : hooks) {
            hook& h = *hp;
            if (!h.configured) continue;
            entry en{std::string(to_string(e.type)), make_body(h.config.name, *protocol::event_wire(e))};
            en.last_error = "events after revision " + std::to_string(e.resync_from) + " were not seen";
            add_dead(h, key, make_dead(h, key, en, "events_missed"), mutations);
        }
        write(std::move(mutations));
    }

    task<void> watch_loop(std::stop_token stop, std::uint64_t from) {
        watch_options o;
        // Identities' webhooks come and go: then every type.
        for (const auto& w : opt.webhooks) {
            if (w.events.empty() || !opt.identity_webhooks.allowed_urls.empty()) {
                o.types.clear();
                break;
            }
            o.types.insert(w.events.begin(), w.events.end());
        }
        o.snapshot = false;
        o.from_revision = from;
        o.wire = true;
        o.stop = stop;
        auto events = reg.watch(std::move(o));
        std::uint64_t last_revision = 0;
        std::uint32_t n = 0;
        for (auto it = co_await events.begin(); it != events.end(); co_await ++it) {
            const event& e = **it;
            if (e.type == event_type::resync_required) {
                missed(e);
                continue;
            }
            if (!is_change(e.type)) continue;
            n = e.revision == last_revision ? n + 1 : 0;
            last_revision = e.revision;
            take(e, n);
        }
    }

    // Sends the webhook's outbox, oldest first, one POST at a time.
    task<void> deliver(std::shared_ptr<hook> held, std::stop_token run_stop) {
        hook& h = *held;
        clock& clk = reg.clk();
        h.halt = std::stop_source{};
        const std::stop_token stop = h.halt.get_token();
        std::stop_callback end_with_run(run_stop, [&h] { h.halt.request_stop(); });
        std::stop_callback on_stop(stop, [&h] { h.wake.request_stop(); });
        while (!stop.stop_requested()) {
            if (h.outbox.empty()) {
                const std::stop_token woken = h.wake.get_token();
                if (!woken.stop_requested()) {
                    auto idle = clk.sleep_until(clk.now() + std::chrono::hours(24), woken);
                    co_await std::move(idle);
                }
                if (h.wake.stop_requested()) h.wake = std::stop_source{};
                continue;
            }
            const entry_key key = h.outbox.begin()->first;
            entry& head = h.outbox.begin()->second;
            if (head.next_at > clk.now()) {
                // Then look again: a dead letter sent again may have come before it.
                auto pause = clk.sleep_until(head.next_at, stop);
                co_await std::move(pause);
                continue;
            }
            const std::uint32_t attempt = ++head.attempts;
            webhook_delivery d{h.config.name, notify::to_id(key), key.revision, head.event, attempt};
            http_post request{h.config.url, webhook_headers(d, h.config.secret, *head.body), head.body,
                              h.config.timeout};
            auto posted = poster.post(std::move(request), stop);
            const http_post_result r = co_await std::move(posted);
            if (stop.stop_requested()) break;  // it stays in the outbox, for the next run
            auto it = h.outbox.find(key);
            if (it == h.outbox.end()) continue;
            entry& en = it->second;
            if (r.status && *r.status >= 200 && *r.status < 300) {
                ++h.delivered;
                h.outbox.erase(it);
                write({{notify::outbox_key(h.config.name, key), std::nullopt}});
                continue;
            }
            en.last_error = r.status ? "HTTP " + std::to_string(*r.status) : r.error;
            if (en.attempts >= h.config.max_attempts) {
                std::vector<store_mutation> mutations{{notify::outbox_key(h.config.name, key), std::nullopt}};
                add_dead(h, key, make_dead(h, key, en, "max_attempts"), mutations);
                h.outbox.erase(it);
                write(std::move(mutations));
                continue;
            }
            ++h.retried;
            en.next_at = clk.now() + webhook_backoff(opt, en.attempts + 1, random);
        }
    }

    registry& reg;
    store& st;
    random_source& random;
    http_poster& poster;
    notifier_options opt;
    // The configured ones first, in order, then identities'; held by their
    // delivery loops too (one deleted meanwhile goes with its loop).
    std::vector<std::shared_ptr<hook>> hooks;
    async_scope* deliveries = nullptr;  // while run() runs: where new webhooks' loops go
    std::stop_token run_stop;
    async_scope writes;
    std::uint64_t store_failures = 0;
    std::vector<hook*> woken;  // take()'s, kept for its capacity
};

notifier::notifier(registry& reg, store& st, random_source& random, http_poster& poster, notifier_options options)
    : impl_(std::make_unique<impl>(reg, st, random, poster, std::move(options))) {}

notifier::~notifier() = default;

const notifier_options& notifier::options() const noexcept { return impl_->opt; }

task<result<void>> notifier::open() {
    auto& m = *impl_;
    std::vector<store_mutation> mutations;
    std::size_t unreadable = 0;
    co_await m.st.load(std::string(notify::prefix), [&](std::string_view key, std::string_view value) {
        if (key.starts_with(notify::hooks_prefix)) {
            const std::string_view name = key.substr(notify::hooks_prefix.size());
            auto decoded = notify::decode_hook(name, value);
            if (!decoded) {
                ++unreadable;
                return;
            }
            impl::hook& h = m.find_or_add(name);
            if (h.configured) {
                // The configuration has taken the name since: it wins.
                mutations.push_back({std::string(key), std::nullopt});
                return;
            }
            h.config = std::move(decoded->first);
            h.owner = std::move(decoded->second);
            h.configured = true;
            return;
        }
        auto parsed = notify::parse_key(key);
        if (!parsed) {
            ++unreadable;
            return;
        }
        impl::hook& h = m.find_or_add(parsed->webhook);
        if (parsed->dead) {
            auto d = notify::decode_dead(value);
            if (!d) {
                ++unreadable;
                return;
            }
            d->webhook = h.config.name;
            d->id = notify::to_id(parsed->key);
            d->revision = parsed->key.revision;
            h.dead[parsed->key] = std::move(*d);
            return;
        }
        auto o = notify::decode_outbox(value);
        if (!o) {
            ++unreadable;
            return;
        }
        h.outbox.emplace(parsed->key, impl::entry{std::move(o->event), std::move(o->body)});
    });
    if (unreadable > 0) {
        co_return fail(errc::internal, std::to_string(unreadable) + " notification records under " +
                                           std::string(notify::prefix) + " cannot be read");
    }
    // The outbox of a webhook the configuration no longer has: dead letters.
    for (auto& hp : m.hooks) {
        impl::hook& h = *hp;
        if (h.configured) continue;
        for (auto& [key, en] : h.outbox) {
            mutations.push_back({notify::outbox_key(h.config.name, key), std::nullopt});
            en.last_error = "the webhook is no longer configured";
            m.add_dead(h, key, m.make_dead(h, key, en, "webhook_removed"), mutations);
        }
        h.outbox.clear();
    }
    if (!mutations.empty()) {
        auto done = co_await m.reg.record({}, std::move(mutations), "notification outbox");
        if (!done) co_return unexpected{done.err()};
    }
    co_return result<void>{};
}

task<void> notifier::run(std::stop_token stop) {
    auto& m = *impl_;
    const std::uint64_t from = m.reg.revision();
    async_scope deliveries;
    m.deliveries = &deliveries;
    m.run_stop = stop;
    for (auto& h : m.hooks) {
        if (h->configured) deliveries.spawn(m.deliver(h, stop));
    }
    co_await m.watch_loop(stop, from);
    m.deliveries = nullptr;
    co_await deliveries.join();
    co_await m.writes.join();
}

std::vector<webhook_stats> notifier::stats() const {
    std::vector<webhook_stats> out;
    for (const auto& h : impl_->hooks) {
        out.push_back({h->config.name, h->delivered, h->retried, h->dropped, h->outbox.size(), h->dead.size()});
    }
    return out;
}

std::vector<dead_letter> notifier::dead_letters(std::string_view webhook) const {
    std::vector<dead_letter> out;
    for (const auto& h : impl_->hooks) {
        if (!webhook.empty() && h->config.name != webhook) continue;
        for (const auto& [key, d] : h->dead) out.push_back(d);
    }
    return out;
}

namespace {

// The keys of `h`'s dead letters that `ids` names (all when empty), or the
// first id it does not have.
template <typename Hook>
result<std::vector<entry_key>> select(const Hook& h, const std::vector<std::string>& ids) {
    std::vector<entry_key> keys;
    if (ids.empty()) {
        for (const auto& [key, d] : h.dead) keys.push_back(key);
        return keys;
    }
    for (const auto& id : ids) {
        auto key = notify::parse_id(id);
        if (!key || !h.dead.contains(*key)) {
            return fail(errc::not_found, "webhook '" + h.config.name + "' has no dead letter '" + id + "'");
        }
        keys.push_back(*key);
    }
    return keys;
}

}  // namespace

task<result<std::size_t>> notifier::retry_dead_letters(std::string webhook, std::vector<std::string> ids) {
    auto& m = *impl_;
    const std::shared_ptr<impl::hook> h = m.find_shared(webhook);  // held: it may be deleted meanwhile
    if (!h || !h->configured) co_return fail(errc::not_found, "no webhook '" + webhook + "' is configured");
    auto keys = select(*h, ids);
    if (!keys) co_return unexpected{keys.err()};
    std::vector<store_mutation> mutations;
    std::size_t retried = 0;
    for (const entry_key& key : *keys) {
        auto it = h->dead.find(key);
        if (it == h->dead.end()) continue;
        mutations.push_back({notify::dead_key(webhook, key), std::nullopt});
        if (it->second.body && !h->outbox.contains(key) && it->second.reason != "events_missed") {
            mutations.push_back({notify::outbox_key(webhook, key), notify::encode_outbox(it->second.event, *it->second.body)});
            h->outbox.emplace(key, impl::entry{it->second.event, it->second.body});
            ++retried;
        }
        h->dead.erase(it);
    }
    // Its delivery loop is woken once the records are durable: a removal
    // after a 2xx must come after them.
    auto done = co_await m.reg.record({}, std::move(mutations), "notification outbox");
    m.wake(*h);
    if (!done) co_return unexpected{done.err()};
    co_return retried;
}

task<result<std::size_t>> notifier::clear_dead_letters(std::string webhook, std::vector<std::string> ids) {
    auto& m = *impl_;
    std::vector<store_mutation> mutations;
    std::size_t cleared = 0;
    if (webhook.empty() && !ids.empty()) co_return fail_field("ids", "needs a webhook");
    if (!webhook.empty() && !m.find(webhook)) co_return fail(errc::not_found, "no webhook '" + webhook + "'");
    for (auto& hp : m.hooks) {
        impl::hook& h = *hp;
        if (!webhook.empty() && h.config.name != webhook) continue;
        auto keys = select(h, ids);
        if (!keys) co_return unexpected{keys.err()};
        for (const entry_key& key : *keys) {
            mutations.push_back({notify::dead_key(h.config.name, key), std::nullopt});
            h.dead.erase(key);
            ++cleared;
        }
    }
    if (mutations.empty()) co_return cleared;
    auto done = co_await m.reg.record({}, std::move(mutations), "notification dead letters");
    if (!done) co_return unexpected{done.err()};
    co_return cleared;
}

namespace {

bool valid_name(std::string_view n) {
    if (n.empty() || n.size() > 64) return false;
    return std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    });
}

bool one_line(std::string_view s) { return s.find_first_of("\t\r\n") == std::string_view::npos; }

bool is_change_type(event_type t) noexcept { return is_change(t); }

}  // namespace

task<result<webhook>> notifier::create_webhook(webhook w, const identity& by) {
    auto& m = *impl_;
    const auto& allowed = m.opt.identity_webhooks;
    if (allowed.allowed_urls.empty()) {
        co_return fail(errc::unavailable, "webhooks of identities are not enabled on this server "
                                          "(notifications.identity_webhooks.allowed_urls)");
    }
    std::vector<field_error> bad;
    if (!valid_name(w.name)) bad.push_back({"name", "must be 1-64 of a-z, 0-9, '-' and '_'"});
    if (w.url.empty() || !one_line(w.url)) {
        bad.push_back({"url", "must be a URL"});
    } else if (m.opt.check_url) {
        if (auto why = m.opt.check_url(w.url)) bad.push_back({"url", *why});
    }
    for (auto t : w.events) {
        if (!is_change_type(t)) bad.push_back({"events", "'" + std::string(to_string(t)) + "' is not an event of a change"});
    }
    for (const auto& p : w.services) {
        if (p.empty() || !one_line(p)) bad.push_back({"services", "patterns must be non-empty, without tabs or line breaks"});
    }
    if (w.timeout < milliseconds{1} || w.timeout > milliseconds{300000}) bad.push_back({"timeout_ms", "must be 1-300000"});
    if (w.max_attempts < 1 || w.max_attempts > 1000) bad.push_back({"max_attempts", "must be 1-1000"});
    if (!bad.empty()) co_return unexpected{invalid_fields(std::move(bad))};
    if (std::none_of(allowed.allowed_urls.begin(), allowed.allowed_urls.end(),
                     [&](const std::string& p) { return glob_match(p, w.url); })) {
        co_return fail(errc::forbidden, "the url '" + w.url + "' matches none of notifications.identity_webhooks.allowed_urls");
    }
    // Its patterns must stay inside the identity's scope: a pattern the scope
    // does not cover names services the identity may not see.
    if (!by.admin && !by.services.empty()) {
        if (w.services.empty()) {
            co_return fail(errc::forbidden, "'" + by.name + "' may see only some services: give `services` within its scope");
        }
        for (const auto& p : w.services) {
            if (!by.may_name_service(p)) {
                co_return fail(errc::forbidden, "'" + by.name + "' may not name the services '" + p + "'");
            }
        }
    }
    if (m.find(w.name)) co_return fail(errc::conflict, "a webhook named '" + w.name + "' exists (or has dead letters)");
    std::size_t mine = 0, total = 0;
    for (const auto& h : m.hooks) {
        if (!h->configured || h->config.owner.empty()) continue;
        ++total;
        if (h->config.owner == by.name) ++mine;
    }
    if (mine >= allowed.max_per_identity) {
        co_return fail(errc::limit_exceeded, "'" + by.name + "' has " + std::to_string(mine) +
                                                 " webhooks (notifications.identity_webhooks.max_per_identity)");
    }
    if (total >= allowed.max_total) {
        co_return fail(errc::limit_exceeded, "the server has " + std::to_string(total) +
                                                 " webhooks of identities (notifications.identity_webhooks.max_total)");
    }
    w.owner = by.name;
    auto h = std::make_shared<impl::hook>();
    h->config = w;
    h->owner = by;
    h->configured = true;
    m.hooks.push_back(h);  // the name is taken from now on
    std::vector<store_mutation> record;
    record.push_back({notify::hook_key(w.name), notify::encode_hook(w, by)});
    auto done = co_await m.reg.record({}, std::move(record), "webhook");
    if (!done) {
        std::erase(m.hooks, h);
        co_return unexpected{done.err()};
    }
    if (m.deliveries) m.deliveries->spawn(m.deliver(h, m.run_stop));
    w.secret.clear();
    co_return w;
}

std::vector<webhook> notifier::webhooks(const identity& by) const {
    std::vector<webhook> out;
    for (const auto& h : impl_->hooks) {
        if (!h->configured) continue;
        if (!by.admin && h->config.owner != by.name) continue;
        out.push_back(h->config);
        out.back().secret.clear();
    }
    return out;
}

task<result<void>> notifier::delete_webhook(std::string name, const identity& by) {
    auto& m = *impl_;
    const std::shared_ptr<impl::hook> h = m.find_shared(name);
    if (!h || !h->configured || (!by.admin && h->config.owner != by.name)) {
        co_return fail(errc::not_found, "no webhook '" + name + "' of '" + by.name + "'");
    }
    if (h->config.owner.empty()) {
        co_return fail(errc::forbidden, "the webhook '" + name + "' is the configuration's (notifications)");
    }
    std::vector<store_mutation> mutations{{notify::hook_key(name), std::nullopt}};
    for (const auto& [key, en] : h->outbox) mutations.push_back({notify::outbox_key(name, key), std::nullopt});
    for (const auto& [key, d] : h->dead) mutations.push_back({notify::dead_key(name, key), std::nullopt});
    std::erase(m.hooks, h);
    h->outbox.clear();
    h->halt.request_stop();  // its loop ends, and lets go of it
    auto done = co_await m.reg.record({}, std::move(mutations), "webhook");
    if (!done) co_return unexpected{done.err()};
    co_return result<void>{};
}

}  // namespace registry
