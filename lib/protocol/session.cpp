#include "session.hpp"

#include "event_encoder.hpp"
#include "lease_visibility.hpp"
#include "request_context.hpp"
#include "response.hpp"
#include "server_impl.hpp"

#include <exception>
#include <utility>
#include <variant>

namespace registry::protocol {

namespace detail_dispatch {

error internal_error(std::exception_ptr e) {
    try {
        std::rethrow_exception(std::move(e));
    } catch (const std::exception& x) {
        return error{errc::internal, std::string("internal error: ") + x.what()};
    } catch (...) {
        return error{errc::internal, "internal error"};
    }
}

}  // namespace detail_dispatch

task<outcome> session::handle(std::shared_ptr<session> self, std::string_view text) {
    session& s = *self;
    auto& shared = s.srv_.internals();
    if (text.size() > shared.lims.max_message_bytes) {
        return rejected(std::move(self), rejection{std::nullopt, {},
                                                   error{errc::payload_too_large,
                                                         "frame exceeds " + std::to_string(shared.lims.max_message_bytes) +
                                                             " bytes"}});
    }
    parse_result parsed = [&]() -> parse_result {
        try {
            return s.parser_.parse(text, shared.actions, &self);
        } catch (...) {
            return rejection{std::nullopt, {}, detail_dispatch::internal_error(std::current_exception())};
        }
    }();
    if (auto* answer = std::get_if<task<outcome>>(&parsed)) return std::move(*answer);
    if (!self) self = s.shared_from_this();  // moved into a task that could not be made (out of memory)
    if (auto* r = std::get_if<relayed_request>(&parsed)) return relayed(std::move(self), std::move(*r), std::string(text));
    return rejected(std::move(self), std::move(std::get<rejection>(parsed)));
}

// The outcome is "relayed": the writer answers the request, and counts it.
task<outcome> session::relayed(std::shared_ptr<session> self, relayed_request r, std::string text) {
    if (self->closed_) co_return self->outcome_of(r.action, "closed", std::move(r.id));  // nobody to answer
    auto sent = co_await self->relay_->forward(r.id, std::move(text));
    if (!sent) {
        self->send_error(&r.id, sent.err());
        co_return self->outcome_of(r.action, to_string(sent.err().code), std::move(r.id));
    }
    co_return self->outcome_of(r.action, "relayed", std::move(r.id));
}

task<outcome> session::rejected(std::shared_ptr<session> self, rejection r) {
    self->send_error(r.id ? &*r.id : nullptr, r.err);
    co_return self->outcome_of(r.action, to_string(r.err.code), r.id ? std::move(*r.id) : std::string());
}

std::optional<error> session::admit(permission_family f) {
    auto& shared = srv_.internals();
    if (!shared.lims.rates.any()) return std::nullopt;
    // Access control off, every client is "anonymous": tell them apart by address.
    if (rate_key_.empty()) {
        rate_key_ = caller_ == principal::anonymous() ? "address " + source_ : "identity '" + caller_->who.name + "'";
    }
    const auto wait = shared.rates.admit(rate_key_, f, srv_.reg().clk().now());
    if (!wait) return std::nullopt;
    error e{errc::rate_limited, "rate limit of " + rate_key_ + " (" + std::string(to_string(f)) +
                                    ") exceeded: retry after " + std::to_string(wait->count()) + " ms"};
    e.retry_after_ms = static_cast<std::uint64_t>(wait->count());
    return e;
}

outcome session::reject(errc code, std::string message) {
    send_error(nullptr, error{code, std::move(message)});
    return outcome_of({}, to_string(code));
}

void session::close() {
    if (closed_) return;
    closed_ = true;
    stop_subscriptions();
    srv_.internals().listings.close_session(id_);
    srv_.reg().release_session(id_);
    closing_.request_stop();
}

void session::send_error(const std::string* id, const error& err) {
    try {
        send(frame{encode_error(id, err), nullptr, frame_kind::response});
    } catch (...) {
        // Out of memory, or an outbox that throws: the answer is lost, the
        // connection is not; the request's outcome still reports the error.
    }
}

bool session::send(frame f) {
    if (closed_) return false;
    if (out_->send(std::move(f))) return true;
    // The embedder is closing the connection (slow consumer): stop streaming.
    stop_subscriptions();
    return false;
}

result<void> session::may_subscribe() const {
    const auto& lims = srv_.lims();
    if (subscriptions_.size() >= lims.max_subscriptions) {
        return fail(errc::limit_exceeded,
                    "at most " + std::to_string(lims.max_subscriptions) + " subscriptions per connection");
    }
    if (lims.max_subscriptions_per_source != 0 && !source_.empty()) {
        const auto& by_source = srv_.internals().subscriptions_by_source;
        auto it = by_source.find(source_);
        if (it != by_source.end() && it->second >= lims.max_subscriptions_per_source) {
            return fail(errc::limit_exceeded, "quota subscriptions_per_address: " + source_ + " holds its maximum of " +
                                                  std::to_string(lims.max_subscriptions_per_source) + " subscriptions");
        }
    }
    return result<void>{};
}

void session::start_subscription(std::string id, async_generator<event_ptr> events, std::stop_source stop) {
    if (subscriptions_.emplace(id, stop).second) count_for_source(1, 0);
    pumps_.spawn(pump(std::move(id), std::move(events), stop.get_token()));
}

std::optional<std::stop_source> session::forget_subscription(std::string_view id) {
    auto it = subscriptions_.find(id);
    if (it == subscriptions_.end()) return std::nullopt;
    std::stop_source stop = std::move(it->second);
    subscriptions_.erase(it);
    count_for_source(0, 1);
    return stop;
}

void session::count_for_source(std::size_t added, std::size_t removed) {
    if (source_.empty()) return;
    auto& by_source = srv_.internals().subscriptions_by_source;
    auto it = by_source.try_emplace(source_, 0).first;
    it->second = it->second + added - removed;
    if (it->second == 0) by_source.erase(it);
}

// Suspends only inside the watch, which ends inline when `stop` is requested:
// stopping a subscription therefore finishes its pump before returning.
task<void> session::pump(std::string id, async_generator<event_ptr> events, std::stop_token stop) {
    try {
        const std::string head = event_head(id);
        for (auto it = co_await events.begin(); it != events.end(); co_await ++it) {
            // A copy that hides lease ids from this viewer is encoded for it; otherwise the shared bytes.
            if (!send(frame{head, event_wire(*visible_to(*it, caller_->who)), frame_kind::event}) ||
                stop.stop_requested()) {
                break;
            }
        }
    } catch (...) {
        // Out of memory encoding an event, or a registry bug: end this
        // subscription rather than the process.
    }
    forget_subscription(id);
}

void session::stop_subscriptions() {
    // Pumps erase their own entry as they end, inline: detach the map first.
    auto stopping = std::exchange(subscriptions_, {});
    count_for_source(0, stopping.size());
    for (auto& [id, stop] : stopping) stop.request_stop();
}

}  // namespace registry::protocol
