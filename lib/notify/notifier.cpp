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

bool takes(const webhook& w, const event& e) {
    if (!w.events.empty() && !w.events.contains(e.type)) return false;
    if (w.services.empty()) return true;
    const auto name = subject(e);
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
            auto h = std::make_unique<hook>();
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
        std::map<entry_key, entry> outbox;
        std::map<entry_key, dead_letter> dead;
        std::stop_source wake;  // requested when the outbox gains an entry
        std::uint64_t delivered = 0, retried = 0, dropped = 0;
    };

    hook* find(std::string_view name) {
        for (auto& h : hooks) {
            if (h->config.name == name) return h.get();
        }
        return nullptr;
    }
    hook& find_or_add(std::string_view name) {
        if (hook* h = find(name)) return *h;
        auto h = std::make_unique<hook>();
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
            if (!h.configured || !takes(h.config, e)) continue;
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
        for (const auto& w : opt.webhooks) {
            if (w.events.empty()) {
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
    task<void> deliver(hook& h, std::stop_token stop) {
        clock& clk = reg.clk();
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
    std::vector<std::unique_ptr<hook>> hooks;  // the configured ones first, in order
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
    for (auto& h : m.hooks) {
        if (h->configured) deliveries.spawn(m.deliver(*h, stop));
    }
    co_await m.watch_loop(stop, from);
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
    impl::hook* h = m.find(webhook);
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

}  // namespace registry
