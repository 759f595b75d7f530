// What a handler has of its request: the reply, request-scoped events, and
// streams (a subscription of the request's own), and what the connection is
// (session id, source address). One type for every module's handlers.
#pragma once

#include "dispatch.hpp"
#include "params_input.hpp"
#include "response.hpp"
#include "session.hpp"

#include <exception>
#include <memory>
#include <stop_token>
#include <string>
#include <utility>

namespace registry::protocol {

// Sends request-scoped events to one connection, also after the request has
// been answered (a REPL execution's output). It holds the session, as every
// handler does: after the connection has gone, sends are refused.
class event_channel {
public:
    explicit event_channel(std::shared_ptr<session> s) : session_(std::move(s)) {}

    // An encoded {"type":"event",...} frame; false if refused.
    bool send(std::string text) {
        return session_ && session_->send(frame{std::move(text), nullptr, frame_kind::event});
    }
    void close() noexcept { session_.reset(); }

private:
    std::shared_ptr<session> session_;
};

class request_context {
public:
    // The request's task holds the session for as long as the context lives.
    request_context(class session& s, std::string id) : session_(s), id_(std::move(id)) {}

    const std::string& id() const noexcept { return id_; }
    bool answered() const noexcept { return answered_; }
    session_id connection_id() const noexcept { return session_.id(); }
    const std::string& source() const noexcept { return session_.source(); }
    // Who asks: the owner of what the request creates, checked against the
    // owner of what it acts on, and the service scope.
    const ::registry::identity& caller() const noexcept { return session_.caller().who; }
    // Requested when the connection closes.
    std::stop_token connection_closing() const noexcept { return session_.closing(); }

    // Names what the request acts on, for the embedder's audit (outcome::target):
    // an instance id, an engine/container id, package@version, a language.
    void set_target(std::string target) { target_ = std::move(target); }
    std::string& target() noexcept { return target_; }

    // Sends {"id":..,"type":"response","data":<write_data(w)>}; false if
    // refused. `data_capacity`: see encode_response().
    template <typename WriteData>
    bool reply(WriteData&& write_data, std::size_t data_capacity = 200) {
        answered_ = true;
        return session_.send(frame{encode_response(id_, std::forward<WriteData>(write_data), data_capacity),
                                    nullptr, frame_kind::response});
    }

    // A request-scoped event, before the response or after it.
    bool event(std::string text) { return session_.send(frame{std::move(text), nullptr, frame_kind::event}); }
    event_channel channel() const { return event_channel(session_.shared_from_this()); }

    // A subscription of the request's own (subscribe, log follow, pull):
    // answers {"subscription": id, <write_more(w)>} and then streams the
    // events `open(stop)` yields. The stream starts right after the response,
    // so the response precedes every event.
    template <typename Open, typename WriteMore>
    result<void> stream(Open&& open, WriteMore&& write_more) {
        if (auto allowed = session_.may_subscribe(); !allowed) return allowed;
        std::string sid = session_.next_subscription_id();
        std::stop_source stop;
        async_generator<event_ptr> events = open(stop.get_token());
        const bool sent = reply([&](detail::json_writer& w) {
            w.begin_object().key("subscription").string(sid);
            write_more(w);
            w.end_object();
        });
        if (sent) session_.start_subscription(std::move(sid), std::move(events), std::move(stop));
        return result<void>{};
    }

    // Ends a subscription of this connection; nullopt if there is none.
    std::optional<std::stop_source> forget_subscription(std::string_view sid) {
        return session_.forget_subscription(sid);
    }

private:
    class session& session_;
    std::string id_;
    std::string target_;
    bool answered_ = false;
};

namespace detail_dispatch {

error internal_error(std::exception_ptr e);

// One request of action `name`: the handler, and the error response when it
// fails without having answered.
template <typename Params>
using params_reader = bool (*)(detail::decoder&, const params_element&, const detail::path&, Params&);
template <typename Module, typename Params>
using action_handler = task<result<void>> (*)(Module&, request_context&, Params&);

// A domain object's field errors (error::fields) named relative to the
// request: the one place the protocol prefixes "params." to a path.
inline error named_in_params(error e) {
    for (auto& f : e.fields) f.path = f.path.empty() ? "params" : "params." + f.path;
    return invalid_fields(std::move(e.fields));
}

template <typename Module, typename Params, action_handler<Module, Params> Handle>
task<outcome> run_action(Module* m, std::shared_ptr<session> self, std::string id, std::string_view name, Params p) {
    // Its transport is gone: whatever the request would do, nobody would learn of it.
    if (self->closed()) co_return self->outcome_of(name, to_string(errc::unavailable), std::move(id));
    request_context ctx(*self, std::move(id));
    error failure;
    try {
        auto done = co_await Handle(*m, ctx, p);
        if (done) co_return self->outcome_of(name, "ok", ctx.id(), std::move(ctx.target()));
        failure = done.err();
    } catch (...) {
        failure = internal_error(std::current_exception());
    }
    if (!failure.fields.empty()) failure = named_in_params(std::move(failure));
    if (!ctx.answered()) self->send_error(&ctx.id(), failure);
    co_return self->outcome_of(name, to_string(failure.code), ctx.id(), std::move(ctx.target()));
}

template <typename Module, typename Params, params_reader<Params> Read, action_handler<Module, Params> Handle>
bool start(void* m, params_input& in, std::shared_ptr<session>* self, std::string& id, task<outcome>& out) {
    Params p{};
    if (!Read(in.d, in.params, in.at, p)) return false;
    if (self) {
        out = run_action<Module, Params, Handle>(static_cast<Module*>(m), std::move(*self), std::move(id),
                                                 Params::action, std::move(p));
    }
    return true;
}

}  // namespace detail_dispatch

// The entry of the action Params::action: its params read by
// `Read(decoder&, const params_element&, const path&, Params&)`, answered by
// `Handle(Module&, request_context&, Params&)` (a task<result<void>>: on
// success it has replied; an error it has not answered is sent for it).
template <typename Module, typename Params, detail_dispatch::params_reader<Params> Read,
          detail_dispatch::action_handler<Module, Params> Handle>
action_entry make_action(permission_family family, Module* m) {
    return action_entry{Params::action, family, &detail_dispatch::start<Module, Params, Read, Handle>, m, {}};
}

}  // namespace registry::protocol
