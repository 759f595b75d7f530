// One connection's protocol state: subscriptions and their pumps, and the
// entry of every request (handle), which the dispatch table sends to the
// action's module. The connection owns it and every handler in flight holds
// it too, so a handler that resumes after the connection is gone finds it
// closed (and sends nothing) rather than freed.
#pragma once

#include "request_parser.hpp"

#include <registry/async_generator.hpp>
#include <registry/async_scope.hpp>
#include <registry/event.hpp>
#include <registry/protocol/connection.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

namespace registry::protocol {

class session : public std::enable_shared_from_this<session> {
public:
    session(server& srv, request_parser& parser, outbox& out, session_id id, std::string source,
            std::shared_ptr<const principal> caller)
        : srv_(srv), parser_(parser), out_(&out), id_(id), source_(std::move(source)), caller_(std::move(caller)) {}
    session(const session&) = delete;
    session& operator=(const session&) = delete;

    // Decodes `text` before returning (the caller's buffer may then go away)
    // and returns the task that answers it.
    static task<outcome> handle(std::shared_ptr<session> self, std::string_view text);

    outcome reject(errc code, std::string message);
    void close();
    bool closed() const noexcept { return closed_; }
    // Requested by close(): what a request waits for on the connection's
    // behalf (a queued container create) stops waiting.
    std::stop_token closing() const noexcept { return closing_.get_token(); }
    std::size_t subscription_count() const noexcept { return subscriptions_.size(); }
    void relay_through(relay& r) noexcept { relay_ = &r; }
    bool relays() const noexcept { return relay_ != nullptr; }

    session_id id() const noexcept { return id_; }
    const std::string& source() const noexcept { return source_; }
    const principal& caller() const noexcept { return *caller_; }

    // The caller's rate limits (protocol::limits::rates) for one request of
    // family `f`: nullopt admits it, else rate_limited with retry_after_ms.
    std::optional<error> admit(permission_family f);
    // An outcome naming the caller and the request.
    outcome outcome_of(std::string_view action, std::string_view code, std::string request_id = {},
                       std::string target = {}) const {
        return outcome{action, code, caller_->who.name, std::move(request_id), std::move(target)};
    }

    // Queues a frame; false if refused (closed, or a full queue: then the
    // subscriptions stop).
    bool send(frame f);
    void send_error(const std::string* id, const error& err);

    // Both subscription quotas: per connection and per source address.
    result<void> may_subscribe() const;
    std::string next_subscription_id() { return "s" + std::to_string(++subscriptions_started_); }
    void start_subscription(std::string id, async_generator<event_ptr> events, std::stop_source stop);
    // Every change to subscriptions_ goes through these two, which keep the
    // per-source count (server::impl::subscriptions_by_source) true.
    std::optional<std::stop_source> forget_subscription(std::string_view id);

private:
    static task<outcome> rejected(std::shared_ptr<session> self, rejection r);
    static task<outcome> relayed(std::shared_ptr<session> self, relayed_request r, std::string text);
    void count_for_source(std::size_t added, std::size_t removed);
    task<void> pump(std::string id, async_generator<event_ptr> events, std::stop_token stop);
    void stop_subscriptions();

    server& srv_;
    request_parser& parser_;  // its loop's (loop_context): used only inside handle()
    outbox* out_;  // not touched once closed: the embedder may have destroyed it
    session_id id_;
    std::string source_;  // the peer's address, for per-source quotas; empty: none
    std::shared_ptr<const principal> caller_;  // never null
    std::string rate_key_;  // its rate limits' bucket key, made on first use
    relay* relay_ = nullptr;  // a replica's connection: what only the writer serves goes there
    bool closed_ = false;
    std::stop_source closing_;
    std::map<std::string, std::stop_source, std::less<>> subscriptions_;
    std::uint64_t subscriptions_started_ = 0;  // names them s1, s2, ...
    async_scope pumps_;
};

}  // namespace registry::protocol
