#include "client_impl.hpp"

#include "websocket/frame_parser.hpp"
#include "websocket/frame_writer.hpp"
#include "websocket/opcode.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <algorithm>
#include <span>
#include <utility>

namespace registry::client::detail {

namespace ws = registryd::websocket;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

error fail(errc code, std::string message) { return error{make_error_code(code), std::move(message)}; }

std::string millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

void apply(registration_state& r, const lease_info& l) {
    r.lease.lease_id = l.lease_id;
    r.lease.instance_id = l.instance_id;
    r.lease.ttl = l.ttl;
    r.lease.expires_at_ms = l.expires_at_ms;
    if (l.revision != 0) r.lease.revision = l.revision;
    r.service.instance_id = l.instance_id;  // a generated id is kept for re-registrations
}

}  // namespace

// How long a connection left for the writer waits for the other answers in flight.
constexpr std::chrono::seconds leave_grace{1};

client_impl::client_impl(asio::any_io_executor ex, options opts)
    : ex_(ex), opts_(std::move(opts)), reconnect_timer_(ex), leave_timer_(ex), rng_(std::random_device{}()) {
    if (!opts_.url.empty() && !opts_.urls.empty()) {
        setup_error_ = fail(errc::connection_failed, "options: give url or urls, not both");
        return;
    }
    url_texts_ = opts_.urls.empty() ? std::vector<std::string>{opts_.url} : opts_.urls;
    for (const std::string& text : url_texts_) {
        auto u = parse_url(text);
        if (!u) {
            setup_error_ = url_texts_.size() == 1 ? u.err() : fail(errc::connection_failed, "options.urls: " + u.err().message);
            return;
        }
        urls_.push_back(std::move(u).value());
    }
    if (std::any_of(urls_.begin(), urls_.end(), [](const url& u) { return u.tls; })) {
        tls_.emplace(asio::ssl::context::tls_client);
        tls_->set_verify_mode(asio::ssl::verify_peer);
        boost::system::error_code ec;
        if (opts_.ca_file.empty()) tls_->set_default_verify_paths(ec);
        else tls_->load_verify_file(opts_.ca_file, ec);
        if (ec) setup_error_ = fail(errc::connection_failed, "TLS: cannot load the CA file '" + opts_.ca_file + "': " + ec.message());
    }
}

void client_impl::start() {
    if (setup_error_) return;
    asio::co_spawn(ex_, run(), asio::detached);
}

const std::string& client_impl::current_url() const {
    static const std::string none;
    return url_texts_.empty() ? none : url_texts_[index_];
}

error client_impl::no_connection() const {
    const std::string where = url_texts_.size() == 1 ? url_texts_[0] : [&] {
        std::string all = "any of ";
        for (std::size_t i = 0; i < url_texts_.size(); ++i) all += (i ? ", " : "") + url_texts_[i];
        return all;
    }();
    return fail(errc::not_connected, "no connection to " + where + " within " + millis(opts_.request_timeout) +
                                         (last_error_ ? ": " + last_error_->message : std::string()));
}

void client_impl::report(const error& e) {
    if (opts_.on_background_error) opts_.on_background_error(e);
}

clock::duration client_impl::backoff(std::uint64_t attempt) {
    auto d = opts_.reconnect_min;
    for (std::uint64_t i = 1; i < attempt && d < opts_.reconnect_max; ++i) d *= 2;
    d = std::min(d, opts_.reconnect_max);
    // Jitter: somewhere in the upper half, so that clients of a restarted daemon spread out.
    std::uniform_int_distribution<std::int64_t> pick(d.count() / 2, d.count());
    return std::chrono::milliseconds(pick(rng_));
}

// ------------------------------------------------------------------ connection

// Round robin over the URLs: a failed attempt goes on to the next URL at
// once, and the backoff delay comes once per round of URLs (with one URL,
// before every attempt), so a dead registryd does not slow the way to a
// live one. A lost connection starts a new round at the next URL after the
// shortest delay; a connection left for the writer goes on to the next URL
// at once, the URL left counting as the round's first.
asio::awaitable<void> client_impl::run() {
    auto self = shared_from_this();
    std::uint64_t rounds = 0;  // rounds of URLs that failed since the last connection
    std::size_t tried = 0;     // attempts in the current round
    errc left_because = errc::connection_lost;
    while (!closed_) {
        std::string leftover;
        ++tried;
        auto opened = co_await transport::open(ex_, urls_[index_], opts_, tls_ ? &*tls_ : nullptr, leftover);
        if (closed_) {
            if (opened) (*opened)->close();
            break;
        }
        if (!opened) {
            last_error_ = opened.err();
            report(opened.err());
            index_ = (index_ + 1) % urls_.size();
            if (tried >= urls_.size()) {
                tried = 0;
                ++failed_rounds_;
                state_changed_.notify_all();
                reconnect_timer_.expires_after(backoff(++rounds));
                co_await reconnect_timer_.async_wait(use_tuple);
            }
            continue;
        }
        rounds = 0;
        tried = 0;
        conn_ = std::shared_ptr<transport>(std::move(opened).value());
        ++generation_;
        last_error_.reset();
        const std::optional<std::size_t> from = open_index_;
        open_index_ = index_;
        state_changed_.notify_all();
        if (from && *from != index_ && opts_.on_moved) opts_.on_moved(url_texts_[*from], url_texts_[index_], left_because);
        asio::co_spawn(ex_, write_loop(conn_), asio::detached);
        asio::co_spawn(ex_, on_connected(generation_), asio::detached);
        co_await read_loop(conn_, std::move(leftover));
        connection_down();
        if (closed_) break;
        index_ = (index_ + 1) % urls_.size();
        left_because = moved_ ? errc::not_writer : errc::connection_lost;
        if (std::exchange(moved_, false) && urls_.size() > 1) {
            tried = 1;
            continue;
        }
        reconnect_timer_.expires_after(backoff(1));
        co_await reconnect_timer_.async_wait(use_tuple);
    }
}

asio::awaitable<void> client_impl::read_loop(std::shared_ptr<transport> conn, std::string leftover) {
    ws::frame_parser parser(ws::frame_parser::peer::server);
    std::string message;
    std::vector<char> buf(std::max<std::size_t>(64 * 1024, leftover.size()));
    std::copy(leftover.begin(), leftover.end(), buf.begin());
    std::size_t n = leftover.size();
    std::optional<std::string> close_reply;  // the close frame to answer with, once reading stops
    for (;;) {
        std::span<char> in(buf.data(), n);
        while (!close_reply) {
            const ws::parse_event e = parser.next(in);
            using kind = ws::parse_event::kind;
            if (e.what == kind::need_more) break;
            if (e.what == kind::data) {
                if (message.size() + e.bytes.size() > opts_.max_message_bytes) {
                    report(fail(errc::bad_frame, "a message above " + std::to_string(opts_.max_message_bytes) + " bytes"));
                    close_reply = ws::close_payload(ws::close_code::too_big, "message too big");
                    break;
                }
                message.append(e.bytes);
                if (e.last) {
                    handle_message(message);
                    message.clear();
                    if (closed_ || conn_ != conn) co_return;
                }
            } else if (e.what == kind::ping) {
                enqueue_frame(ws::opcode::pong, e.bytes);
            } else if (e.what == kind::close) {
                close_reply = ws::close_payload(e.code == ws::close_code::none ? ws::close_code::normal : e.code, "");
            } else if (e.what == kind::error) {
                report(fail(errc::bad_frame, "registryd's frames: " + std::string(e.bytes)));
                close_reply = ws::close_payload(e.code, e.bytes);
            }
        }
        if (close_reply) break;
        auto [err, got] = co_await conn->read_some(asio::buffer(buf));
        if (err || closed_ || conn_ != conn) co_return;
        n = got;
    }
    std::array<std::uint8_t, 4> key{};
    for (auto& b : key) b = static_cast<std::uint8_t>(rng_());
    const std::string frame = ws::masked_frame(ws::opcode::close, *close_reply, key);
    co_await conn->write(asio::buffer(frame));
}

asio::awaitable<void> client_impl::write_loop(std::shared_ptr<transport> conn) {
    auto self = shared_from_this();
    while (!closed_ && conn_ == conn) {
        if (outbox_.empty()) {
            co_await outbox_ready_.wait_until(clock::time_point::max());
            continue;
        }
        const std::string frame = std::move(outbox_.front());
        outbox_.pop_front();
        if (co_await conn->write(asio::buffer(frame))) {
            conn->close();  // the reader sees it and reconnects
            co_return;
        }
    }
}

void client_impl::enqueue_frame(std::uint8_t op, std::string_view payload) {
    // A fresh mask per frame (RFC 6455 §5.3); it guards proxies, not secrets.
    std::array<std::uint8_t, 4> key{};
    const std::uint32_t r = static_cast<std::uint32_t>(rng_());
    for (std::size_t i = 0; i < 4; ++i) key[i] = static_cast<std::uint8_t>(r >> (8 * i));
    outbox_.push_back(ws::masked_frame(op, payload, key));
    outbox_ready_.notify_all();
}

void client_impl::connection_down() {
    if (conn_) conn_->close();
    conn_.reset();
    leaving_ = false;
    leave_timer_.cancel();
    outbox_.clear();
    outbox_ready_.notify_all();
    const errc why = closed_ ? errc::closed : errc::connection_lost;
    for (auto& [id, p] : pending_) {
        p->outcome = fail(why, closed_ ? "the client was closed" : "the connection to registryd was lost");
        p->timer.cancel();
    }
    pending_.clear();
    for (auto& s : subscriptions_) s->server_id.clear();
    state_changed_.notify_all();
}

// A request was answered not_writer and moves: the connection is left for
// the next URL once the other requests in flight are answered (writes sent
// at the same time are answered not_writer too and move along), or after
// leave_grace; what is still unanswered then fails with connection_lost.
void client_impl::leave_for_writer() {
    if (leaving_ || !conn_) return;
    leaving_ = true;
    state_changed_.notify_all();
    asio::co_spawn(ex_, leave_after(conn_), asio::detached);
    leave_when_answered();
}

void client_impl::leave_when_answered() {
    if (!leaving_ || !pending_.empty() || !conn_) return;
    moved_ = true;
    conn_->close();  // the reader sees it; run() goes on to the next URL
}

asio::awaitable<void> client_impl::leave_after(std::shared_ptr<transport> conn) {
    auto self = shared_from_this();
    leave_timer_.expires_after(leave_grace);
    co_await leave_timer_.async_wait(use_tuple);
    if (closed_ || !leaving_ || conn_ != conn) co_return;
    moved_ = true;
    conn->close();
}

void client_impl::close() {
    if (closed_) return;
    closed_ = true;
    if (conn_) conn_->close();
    reconnect_timer_.cancel();
    leave_timer_.cancel();
    for (auto& r : registrations_) {
        r->stopped = true;
        r->timer.cancel();
    }
    registrations_.clear();
    for (auto& s : std::vector(subscriptions_)) end_subscription(s, fail(errc::closed, "the client was closed"));
    for (auto& [id, p] : pending_) {
        p->outcome = fail(errc::closed, "the client was closed");
        p->timer.cancel();
    }
    pending_.clear();
    state_changed_.notify_all();
    outbox_ready_.notify_all();
}

asio::awaitable<result<done>> client_impl::wait_connected() {
    auto self = shared_from_this();
    const std::uint64_t failed_rounds = failed_rounds_;
    const auto deadline = clock::now() + opts_.request_timeout;
    for (;;) {
        if (setup_error_) co_return *setup_error_;
        if (closed_) co_return fail(errc::closed, "the client was closed");
        if (conn_) co_return done{};
        if (failed_rounds_ != failed_rounds && last_error_) co_return *last_error_;
        if (clock::now() >= deadline) co_return no_connection();
        co_await state_changed_.wait_until(deadline);
    }
}

// -------------------------------------------------------------------- requests

// A request answered not_writer moves with the connection to the next URL
// and is sent again there, until a registryd takes it or every URL had its
// turn (then the not_writer answer is the result).
asio::awaitable<result<std::string>> client_impl::request(std::string action, std::string params,
                                                          std::shared_ptr<subscription_state> attach) {
    auto self = shared_from_this();
    const auto deadline = clock::now() + opts_.request_timeout;
    std::size_t not_writer = 0;
    std::uint64_t left = 0;  // the connection it moved from (0: none)
    for (;;) {
        while (!conn_ || leaving_ || generation_ == left) {
            if (setup_error_) co_return *setup_error_;
            if (closed_) co_return fail(errc::closed, "the client was closed");
            if (clock::now() >= deadline) co_return no_connection();
            co_await state_changed_.wait_until(deadline);
        }
        const std::string id = std::to_string(next_id_++);
        auto p = std::make_shared<pending>(ex_, deadline, attach);
        p->not_writer = not_writer;
        pending_.emplace(id, p);
        enqueue_frame(ws::opcode::text, wire::request(id, action, params));
        const std::uint64_t sent_on = generation_;
        co_await p->timer.async_wait(use_tuple);
        if (p->moved) {
            ++not_writer;
            left = sent_on;
            continue;
        }
        if (pending_.erase(id) != 0) leave_when_answered();
        if (!p->outcome) co_return fail(errc::timeout, "no response to " + action + " within " + millis(opts_.request_timeout));
        co_return std::move(*p->outcome);
    }
}

void client_impl::handle_message(std::string_view text) {
    auto frame = wire::classify(parser_, text);
    if (!frame) {
        report(frame.err());
        return;
    }
    if (frame->what == wire::incoming::kind::response) {
        if (!frame->id) {
            report(frame->failure ? *frame->failure : fail(errc::bad_frame, "a response with a null id"));
            return;
        }
        const auto it = pending_.find(*frame->id);
        if (it == pending_.end()) return;  // timed out already
        const std::shared_ptr<pending> p = it->second;
        pending_.erase(it);
        if (frame->failure && frame->failure->is(errc::not_writer) && p->not_writer + 1 < urls_.size()) {
            p->moved = true;
            p->timer.cancel();
            leave_for_writer();
            return;
        }
        if (frame->failure) {
            p->outcome = *frame->failure;
        } else {
            if (p->attach && p->attach->end) {
                // Cancelled while its subscribe was in flight.
                asio::co_spawn(ex_, unsubscribe(frame->subscribed), asio::detached);
            } else if (p->attach) {
                subscription_state& s = *p->attach;
                s.server_id = frame->subscribed;
                if (!s.subscribed_once && !s.opts.from_revision) s.resume.start_at(frame->subscribed_revision);
                s.subscribed_once = true;
            }
            p->outcome = std::move(frame->data);
        }
        p->timer.cancel();
        leave_when_answered();
        return;
    }
    if (frame->what == wire::incoming::kind::event && !frame->subscription.empty()) {
        for (const auto& s : subscriptions_) {
            if (s->server_id == frame->subscription) {
                deliver(s, *frame);
                return;
            }
        }
    }
}

// --------------------------------------------------------------- registrations

asio::awaitable<result<registration>> client_impl::register_service(service_instance s, register_options o) {
    auto self = shared_from_this();
    auto r = std::make_shared<registration_state>(ex_, std::move(s), o);
    r->client = weak_from_this();
    auto data = co_await request("register", wire::register_params(r->service, r->opts, std::nullopt));
    if (!data) co_return data.err();
    auto l = wire::lease(parser_, *data);
    if (!l) co_return l.err();
    apply(*r, *l);
    r->lease.created = l->created;
    if (closed_) co_return fail(errc::closed, "the client was closed");
    registrations_.push_back(r);
    asio::co_spawn(ex_, keepalive_loop(r), asio::detached);
    co_return registration(r);
}

asio::awaitable<result<done>> client_impl::reregister(const std::shared_ptr<registration_state>& r, bool with_lease) {
    std::optional<std::uint64_t> lease;
    if (with_lease) lease = r->lease.lease_id;
    auto data = co_await request("register", wire::register_params(r->service, r->opts, lease));
    if (!data && data.err().is(errc::lease_not_found) && with_lease && !r->stopped) {
        // The lease is gone (it expired while registryd was unreachable): a new one.
        data = co_await request("register", wire::register_params(r->service, r->opts, std::nullopt));
        if (data) ++r->reregistrations;
    }
    if (!data) co_return data.err();
    auto l = wire::lease(parser_, *data);
    if (!l) co_return l.err();
    apply(*r, *l);
    ++r->renewals;
    co_return done{};
}

asio::awaitable<void> client_impl::keepalive_loop(std::shared_ptr<registration_state> r) {
    auto self = shared_from_this();
    const auto interval = r->opts.keepalive_interval.count() > 0
                              ? std::chrono::duration_cast<clock::duration>(r->opts.keepalive_interval)
                              : std::chrono::duration_cast<clock::duration>(r->opts.ttl) / 3;
    while (!r->stopped && !closed_) {
        r->timer.expires_after(interval);
        co_await r->timer.async_wait(use_tuple);
        if (r->stopped || closed_) break;
        if (!conn_) continue;  // the reconnect re-registers
        auto data = co_await request("keepalive", wire::keepalive_params(r->lease.lease_id));
        if (r->stopped) break;
        if (data) {
            auto l = wire::lease(parser_, *data);
            if (l) {
                apply(*r, *l);
                ++r->renewals;
            } else {
                report(l.err());
            }
        } else if (data.err().is(errc::lease_not_found)) {
            auto again = co_await reregister(r, true);
            if (!again) report(again.err());
        } else if (!data.err().is(errc::closed)) {
            report(data.err());  // a lost connection or a timeout: the next round retries
        }
    }
}

// Re-registers (renewing a session-bound lease on this connection), all at
// once: on a standby they are all answered not_writer and move together.
asio::awaitable<void> client_impl::on_connected(std::uint64_t generation) {
    auto self = shared_from_this();
    for (const auto& r : std::vector(registrations_)) {
        if (r->stopped || r->renewing) continue;
        r->renewing = true;  // from now: the coroutine may start later
        asio::co_spawn(ex_, renew(r), asio::detached);
    }
    for (const auto& s : std::vector(subscriptions_)) {
        if (!s->subscribed_once || !s->server_id.empty() || s->end || s->resubscribing) continue;
        co_await resubscribe(s);
        if (closed_ || generation_ != generation) co_return;
    }
}

// One re-registration at a time per registration: one that moved with the
// connection goes on there. While no registryd takes writes (a standby
// taking over), every URL answers not_writer: tried again after the
// reconnect backoff until one takes it. A lost connection: tried again on
// the next one.
asio::awaitable<void> client_impl::renew(std::shared_ptr<registration_state> r) {
    auto self = shared_from_this();
    for (std::uint64_t round = 1; !r->stopped && !closed_;) {
        auto again = co_await reregister(r, true);
        if (again || r->stopped || closed_) break;
        if (again.err().is(errc::connection_lost)) continue;
        if (again.err().is(errc::closed) || again.err().is(errc::not_connected)) break;  // the next connection renews it
        report(again.err());
        if (!again.err().is(errc::not_writer)) break;
        const auto until = clock::now() + backoff(round++);
        while (clock::now() < until && !r->stopped && !closed_) co_await state_changed_.wait_until(until);
    }
    r->renewing = false;
}

void client_impl::stop(const std::shared_ptr<registration_state>& r) {
    r->stopped = true;
    r->timer.cancel();
    std::erase(registrations_, r);
}

asio::awaitable<result<done>> client_impl::deregister(std::shared_ptr<registration_state> r) {
    auto self = shared_from_this();
    stop(r);
    auto data = co_await request("deregister", wire::instance_params(r->lease.instance_id));
    if (!data && !data.err().is(errc::not_found)) co_return data.err();
    co_return done{};
}

// --------------------------------------------------------------------- watches

asio::awaitable<result<subscription>> client_impl::watch(watch_options o) {
    auto self = shared_from_this();
    auto s = std::make_shared<subscription_state>(ex_, std::move(o));
    s->client = weak_from_this();
    subscriptions_.push_back(s);
    auto data = co_await request("subscribe", wire::subscribe_params(s->opts, s->opts.from_revision, s->opts.snapshot), s);
    if (!data) {
        std::erase(subscriptions_, s);
        co_return data.err();
    }
    co_return subscription(s);
}

asio::awaitable<void> client_impl::resubscribe(std::shared_ptr<subscription_state> s) {
    const std::uint64_t from = s->resume.resume();
    s->resubscribing = true;
    auto data = co_await request("subscribe", wire::subscribe_params(s->opts, from, false), s);
    s->resubscribing = false;
    if (data || s->end) co_return;
    if (data.err().is(errc::connection_lost) || data.err().is(errc::closed) || data.err().is(errc::not_connected) ||
        data.err().is(errc::timeout)) {
        report(data.err());  // the next connection retries
        co_return;
    }
    end_subscription(s, data.err());  // refused: the watch cannot go on
}

void client_impl::deliver(const std::shared_ptr<subscription_state>& s, const wire::incoming& frame) {
    if (s->end || !s->resume.accept(frame.event, frame.revision)) return;
    auto e = wire::decode_event(parser_, frame);
    if (!e) {
        end_subscription(s, e.err());
        return;
    }
    s->queue.push_back(std::move(e).value());
    if (s->queue.size() > opts_.max_buffered_events) {
        end_subscription(s, fail(errc::slow_consumer, "the watch holds more than " + std::to_string(opts_.max_buffered_events) +
                                                          " events its reader has not taken"));
        return;
    }
    s->ready.notify_all();
}

void client_impl::end_subscription(const std::shared_ptr<subscription_state>& s, error e) {
    if (s->end) return;
    s->end = std::move(e);
    // What is queued is still read before the end, unless the reader is the problem.
    if (s->end->is(errc::slow_consumer)) s->queue.clear();
    if (!s->server_id.empty() && conn_ && !closed_) asio::co_spawn(ex_, unsubscribe(s->server_id), asio::detached);
    s->server_id.clear();
    std::erase(subscriptions_, s);
    s->ready.notify_all();
}

void client_impl::cancel(const std::shared_ptr<subscription_state>& s) {
    end_subscription(s, fail(errc::closed, "the watch was cancelled"));
    s->queue.clear();
}

asio::awaitable<void> client_impl::unsubscribe(std::string server_id) {
    auto self = shared_from_this();
    auto data = co_await request("unsubscribe", wire::unsubscribe_params(server_id));
    if (!data && !data.err().is(errc::not_found) && !data.err().is(errc::closed)) report(data.err());
}

}  // namespace registry::client::detail
