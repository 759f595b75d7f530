// Webhook notifications (docs/protocol.md, "Notifications"): the registry's
// changes POSTed to HTTP receivers, at least once, in revision order per
// webhook.
//
// The notifier watches the registry; each change a webhook's filter takes
// goes into that webhook's durable outbox (records under notify/outbox/,
// written through the registry's store) before it is sent, and leaves it
// once the receiver answered 2xx. A failed POST is retried with exponential
// backoff and jitter; after max_attempts the event goes to the webhook's
// dead-letter list (notify/dead/), where an admin sees it and can send it
// again (notification_dead_letters*). After a restart, open() loads the
// outbox and delivery resumes where it stood: a receiver may see an event
// twice (it was delivered, but its removal from the outbox was not durable
// yet), never zero times once its outbox record is durable; the
// Idempotency-Key header lets it drop the duplicate.
//
// One delivery is in flight per webhook: the next event is sent only once the
// one before it was delivered or given up (dead-lettered), so a receiver
// gets each webhook's events in revision order; webhooks do not wait for each
// other.
#pragma once

#include <registry/event.hpp>
#include <registry/identity.hpp>
#include <registry/ports/clock.hpp>
#include <registry/ports/http_poster.hpp>
#include <registry/ports/random.hpp>
#include <registry/ports/store.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace registry {

class registry;

struct webhook {
    std::string name;  // [a-z0-9_-], 1-64: in store keys, headers and metric labels
    std::string url;
    std::set<event_type> events;        // empty: every change (the watch's own items never)
    std::vector<std::string> services;  // name patterns ('*', '?'); empty: every event, else events naming a match
    std::string secret;                 // signs the body (X-Registry-Signature); empty: unsigned
    milliseconds timeout{5000};
    std::uint32_t max_attempts = 10;
    // A webhook an identity made (webhook_create): its name; empty for the
    // configuration's. It gets only events about services in the identity's
    // scope (identity::may_name_service; events about no service: admins only).
    std::string owner;
};

// Webhooks that identities make and delete with actions (webhook_create,
// webhook_list, webhook_delete): off unless some URL is allowed, since each
// makes the server POST where the client says.
struct identity_webhook_options {
    std::vector<std::string> allowed_urls;  // patterns ('*', '?') a url must match; empty: no such webhooks
    std::size_t max_per_identity = 4;
    std::size_t max_total = 64;  // besides the configuration's
};

struct notifier_options {
    std::vector<webhook> webhooks;
    milliseconds initial_backoff{1000};  // before the 2nd attempt; doubles per attempt
    milliseconds max_backoff{300000};
    std::size_t max_outbox = 10000;        // per webhook; an event beyond it is dead-lettered ("outbox_full")
    std::size_t max_dead_letters = 1000;   // per webhook; the oldest goes when a new one comes
    identity_webhook_options identity_webhooks;
    // The embedder's check of a url a client gives (the schemes its poster
    // takes, the url's syntax): the problem, or nullopt if it is fine.
    std::function<std::optional<std::string>(std::string_view url)> check_url;
};

// An event the notifier gave up on.
struct dead_letter {
    std::string webhook;
    std::string id;  // "<revision>.<n>": n-th event of its revision this webhook took; its Idempotency-Key's tail
    std::uint64_t revision = 0;
    std::string event;                 // its type
    std::string reason;                // "max_attempts", "outbox_full", "webhook_removed"
    std::uint32_t attempts = 0;
    std::string last_error;            // "HTTP 500", "timed out", ...
    time_point failed_at{};
    std::shared_ptr<const std::string> body;  // what was (or would have been) POSTed
};

struct webhook_stats {
    std::string name;
    std::uint64_t delivered = 0;  // POSTs answered 2xx
    std::uint64_t retried = 0;    // failed POSTs that will be tried again
    std::uint64_t dropped = 0;    // events dead-lettered
    std::size_t outbox = 0;       // events waiting, the one in flight included
    std::size_t dead_letters = 0;
};

// What a POST carries besides the body (docs/protocol.md, "Notifications").
struct webhook_delivery {
    std::string webhook;
    std::string id;
    std::uint64_t revision = 0;
    std::string event;
    std::uint32_t attempt = 1;
};
std::vector<std::pair<std::string, std::string>> webhook_headers(const webhook_delivery& d, std::string_view secret,
                                                                  std::string_view body);
// "sha256=<hex HMAC-SHA256(secret, body)>"
std::string webhook_signature(std::string_view secret, std::string_view body);
// The delay before attempt `attempt` (>= 2): initial * 2^(attempt-2), at most
// max_backoff, of which a random part (up to half) is taken off so that
// webhooks failing together do not retry together.
milliseconds webhook_backoff(const notifier_options& o, std::uint32_t attempt, random_source& random);

class notifier {
public:
    // The registry must be open before open(); `st` is its store (read by
    // open(); writes go through registry::record).
    notifier(registry& reg, store& st, random_source& random, http_poster& poster, notifier_options options);
    ~notifier();
    notifier(const notifier&) = delete;
    notifier& operator=(const notifier&) = delete;

    // Loads the outboxes and dead letters; an outbox of a webhook no longer
    // configured is dead-lettered ("webhook_removed").
    task<result<void>> open();

    // Watches the registry from its revision at the call and delivers, until
    // `stop` is requested.
    task<void> run(std::stop_token stop);

    std::vector<webhook_stats> stats() const;
    const notifier_options& options() const noexcept;

    // The dead letters, oldest first, of one webhook or (empty) every one.
    std::vector<dead_letter> dead_letters(std::string_view webhook = {}) const;
    // Puts dead letters of `webhook` back into its outbox, in revision order,
    // with max_attempts afresh; `ids` empty: all of them. Yields how many.
    // not_found: no such webhook configured, or an id it does not have.
    task<result<std::size_t>> retry_dead_letters(std::string webhook, std::vector<std::string> ids);
    // Deletes dead letters (of every webhook when `webhook` is empty).
    task<result<std::size_t>> clear_dead_letters(std::string webhook, std::vector<std::string> ids);

    // A webhook of `by`'s own (owner: by.name), kept in the store and
    // delivered like the configuration's. unavailable: identity webhooks are
    // off; invalid_request (error::fields): a field; forbidden: its url is
    // not allowed, or a pattern of `services` names what `by` may not;
    // conflict: the name is taken; limit_exceeded: max_per_identity/max_total.
    task<result<webhook>> create_webhook(webhook w, const identity& by);
    // The webhooks `by` may see (an admin: every one; else its own), secrets left out.
    std::vector<webhook> webhooks(const identity& by) const;
    // Deletes a webhook made by an identity, with its outbox and dead
    // letters. not_found; forbidden: another identity's (unless `by` is an
    // admin), or the configuration's.
    task<result<void>> delete_webhook(std::string name, const identity& by);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace registry
