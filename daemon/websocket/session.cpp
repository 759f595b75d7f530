#include "websocket/session.hpp"

#include "cluster/session_relay.hpp"
#include "observability/log.hpp"
#include "server_state.hpp"
#include "tls/tls_channel.hpp"

#include <boost/asio/post.hpp>

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <exception>
#include <span>
#include <utility>

namespace registryd {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// The address part of an endpoint string "ADDR:PORT" / "[V6]:PORT": what
// the protocol's per-source quotas count by.
std::string source_address(std::string_view endpoint) {
    endpoint = endpoint.substr(0, endpoint.rfind(':'));
    if (endpoint.size() >= 2 && endpoint.front() == '[') endpoint = endpoint.substr(1, endpoint.size() - 2);
    return std::string(endpoint);
}

}  // namespace

ws_socket adopt_socket(asio::io_context& ioc, tcp::socket&& s, error_code& ec) {
    ws_socket out(ioc.get_executor());
    const tcp protocol = s.local_endpoint(ec).protocol();
    if (ec) return out;
    const auto fd = s.release(ec);
    if (ec) return out;
    out.assign(protocol, fd, ec);
    if (ec) ::close(fd);
    return out;
}

ws_session::ws_session(std::shared_ptr<server::state> st, std::uint64_t id, ws_socket&& socket, std::string remote,
                       source_slot slot, std::shared_ptr<const registry::protocol::principal> caller)
    : connection(id, std::move(remote)),
      st_(std::move(st)),
      slot_(std::move(slot)),
      socket_(std::move(socket)),
      conn_(st_->proto, st_->loop, *this, id, source_address(this->remote()), std::move(caller)) {
    st_->m.connection_opened();
}

ws_session::~ws_session() {
    // Every in-flight request has completed (each held a shared_ptr). The
    // protocol connection may still send while it ends: dropped (closed).
    finish();
    conn_.close();
    if (relay_) relay_->close();
    st_->ws_sessions.erase(id());
    st_->m.connection_closed();
    if (tls()) st_->tls_channels.erase(id());
    log::debug("connection closed", {{"conn", id()}, {"remote", remote()}});
    st_->check_drained();
}

bool ws_session::tls() const noexcept { return st_->tls != nullptr; }

tls_channel& ws_session::channel() const { return st_->tls_channels.find(id())->second; }

void ws_session::run(upgrade_answer answer, std::string_view early) {
    st_->ws_sessions.emplace(id(), weak_from_this());
    error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) {
        log::debug("websocket handshake failed", {{"conn", id()}, {"remote", remote()}, {"error", ec.message()}});
        finish();
        return;
    }

    // The answer is written at once (a fresh socket's buffer takes it).
    const auto now = clock::now();
    if (!answer.accepted) {
        log::debug("websocket handshake failed", {{"conn", id()}, {"remote", remote()}, {"error", answer.error}});
        refuse(std::move(answer.bytes), now);
        flush();
        return;
    }
    accept(std::move(answer.bytes), now);
    flush();
    if (!is_open()) return;  // the write failed
    log::debug("connection opened", {{"conn", id()}, {"remote", remote()}});
    if (st_->shutting_down) {
        shutdown();
        return;
    }
    if (!early.empty()) {
        std::string bytes(early);  // the parser unmasks in place
        received(std::span<char>(bytes.data(), bytes.size()), now);
    }
    // OpenSSL may hold the rest of a record already read from the socket:
    // no readiness would announce it.
    if (tls()) may_have_more_ = true;
    maybe_read();
}

void ws_session::relay_writes(std::string token) {
    relay_ = std::make_unique<session_relay>(
        *st_->relay, std::move(token), [weak = weak_from_this()](std::string text, bool is_response) {
            auto self = weak.lock();
            return self && self->send(registry::protocol::frame{
                               std::move(text), nullptr,
                               is_response ? registry::protocol::frame_kind::response : registry::protocol::frame_kind::event});
        });
    conn_.relay_through(*relay_);
}

void ws_session::shutdown() {
    connection::shutdown(clock::now());
    maybe_read();
}

void ws_session::close_socket() {
    error_code ec;
    socket_.close(ec);
}

void ws_session::tick(clock::time_point now) {
    if (!due(now)) return;
    std::uint32_t unsent = 0;
    if (is_closing()) {
        int n = 0;
        if (::ioctl(socket_.native_handle(), SIOCOUTQ, &n) == 0 && n > 0) unsent = static_cast<std::uint32_t>(n);
    }
    connection::tick(now, unsent);
    maybe_read();
}

void ws_session::shed() {
    connection::shed(clock::now());
    maybe_read();
}

bool ws_session::send(registry::protocol::frame f) {
    const bool taken = connection::send(std::move(f));
    if (!taken) maybe_read();  // closing: for the peer's answer
    return taken;
}

//------------------------------------------------------------------------------
// Reading

void ws_session::maybe_read() {
    if (reading_ || !wants_read()) return;
    reading_ = true;
    if (may_have_more_) {
        // The last read filled the buffer: more may be waiting, and Asio's
        // epoll reactor is edge-triggered, so a wait would see no new edge
        // if the peer cannot send more until we read (its window closed).
        // Read again, after what else is ready to run.
        may_have_more_ = false;
        asio::post(socket_.get_executor(), [self = shared_from_this()] { self->on_readable({}); });
        return;
    }
    socket_.async_wait(ws_socket::wait_read,
                       [self = shared_from_this()](const error_code& ec) { self->on_readable(ec); });
}

void ws_session::on_readable(const error_code& ec) {
    reading_ = false;
    if (ec) {
        on_transport_error(ec, "read");
        return;
    }
    if (is_closed()) return;
    if (tls()) {
        read_tls();
        return;
    }
    auto& buffer = st_->read_buffer;
    error_code rec;
    const std::size_t n = socket_.read_some(asio::buffer(buffer), rec);
    if (rec == asio::error::would_block || rec == asio::error::try_again) {
        maybe_read();
        return;
    }
    if (rec) {
        if (is_closing() && rec == asio::error::eof) {
            hung_up();  // after (or instead of) answering our close
            return;
        }
        on_transport_error(rec, "read");
        return;
    }
    may_have_more_ = n == buffer.size();
    received(std::span<char>(buffer.data(), n), clock::now());
    maybe_read();
}

// Reads until OpenSSL wants more input (the socket would block: the next
// readiness is a new edge) or the buffer is full (read again after a post).
void ws_session::read_tls() {
    auto& buffer = st_->read_buffer;
    auto& ch = channel();
    std::size_t n = 0;
    tls_channel::result r;
    while (n < buffer.size()) {
        r = ch.read(buffer.data() + n, buffer.size() - n);
        if (r.what != tls_channel::status::done) break;
        n += r.bytes;
    }
    may_have_more_ = n == buffer.size();
    if (n > 0) {
        received(std::span<char>(buffer.data(), n), clock::now());
        if (is_closed()) return;
        if (may_have_more_) {
            maybe_read();
            return;
        }
    }
    switch (r.what) {
        case tls_channel::status::done:
        case tls_channel::status::want_read:
            break;
        case tls_channel::status::want_write:  // OpenSSL answers something first
            reading_ = true;
            socket_.async_wait(ws_socket::wait_write,
                               [self = shared_from_this()](const error_code& ec) { self->on_readable(ec); });
            return;
        case tls_channel::status::closed:
            if (is_closing()) {
                hung_up();
                return;
            }
            on_transport_error(asio::error::eof, "read");
            return;
        case tls_channel::status::failed:
            if (!is_closed()) log::debug("connection failed", {{"conn", id()}, {"op", "read"}, {"error", ch.error()}});
            transport_failed();
            return;
    }
    maybe_read();
}

void ws_session::on_transport_error(const error_code& ec, std::string_view op) {
    if (is_closed()) return;
    if (ec != asio::error::operation_aborted && ec != asio::error::eof) {
        log::debug("connection failed", {{"conn", id()}, {"op", op}, {"error", ec.message()}});
    } else if (ec == asio::error::eof && !is_closing()) {
        log::debug("connection failed", {{"conn", id()}, {"op", op}, {"error", ec.message()}});
    }
    transport_failed();
}

//------------------------------------------------------------------------------
// Requests

void ws_session::deliver(std::string text, std::size_t charge) {
    scope_.spawn(handle_request(shared_from_this(), std::move(text), charge));
}

// Owns the request's bytes and a reference to the session for as long as the
// library works on it.
registry::task<void> ws_session::handle_request(std::shared_ptr<ws_session> self, std::string text,
                                                std::size_t charge) {
    const auto start = clock::now();
    clock::time_point end;
    try {
        const registry::protocol::outcome o = co_await self->conn_.handle(text);
        end = self->record(o.action, o.code, start);
        self->st_->audit_request(o, self->remote());
    } catch (const std::exception& e) {
        log::error("request handler failed", {{"conn", self->id()}, {"error", e.what()}});
        end = self->record({}, "internal", start);
    } catch (...) {
        log::error("request handler failed", {{"conn", self->id()}, {"error", "unknown exception"}});
        end = self->record({}, "internal", start);
    }
    self->request_done(charge, end);
    self->maybe_read();
}

ws_session::clock::time_point ws_session::record(std::string_view action, std::string_view code,
                                                 clock::time_point start) {
    const auto end = clock::now();
    const double seconds = std::chrono::duration<double>(end - start).count();
    st_->m.request(action, code, seconds);
    if (log::enabled(log::level::debug)) {
        log::debug("request", {{"conn", id()}, {"action", action}, {"code", code}, {"seconds", seconds}});
    }
    return end;
}

void ws_session::reject(registry::errc code, std::string message) { conn_.reject(code, std::move(message)); }

//------------------------------------------------------------------------------
// Writing

const websocket::connection_policy& ws_session::policy() const noexcept { return st_->policy; }

bool ws_session::charge(std::uint64_t n) { return st_->budget.try_charge(n) || st_->relieve(n, *this); }

void ws_session::release(std::uint64_t n) noexcept { st_->budget.release(n); }

void ws_session::output_queued() {
    if (!flush_scheduled_ && !writing_) {
        flush_scheduled_ = true;
        st_->schedule_flush(shared_from_this());
    }
}

void ws_session::flush() {
    flush_scheduled_ = false;
    if (writing_ || is_closed()) return;
    if (tls()) {
        flush_tls();
        return;
    }
    while (has_output()) {
        std::array<iovec, max_write_buffers> iov;
        msghdr msg{};
        msg.msg_iov = iov.data();
        msg.msg_iovlen = gather(iov);
        const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wait_writable();
                return;
            }
            on_transport_error(error_code(errno, boost::system::system_category()), "write");
            return;
        }
        written(static_cast<std::size_t>(n));
        if (is_closed()) return;
    }
}

// One TLS record at a time: the queued frames are copied into one piece of
// at most a record's size (a single frame that large is written in place).
// After want_write the same bytes are at the queue's head again, as OpenSSL
// needs for its retry.
void ws_session::flush_tls() {
    constexpr std::size_t record = 16 * 1024;
    auto& ch = channel();
    while (has_output()) {
        std::array<iovec, max_write_buffers> iov;
        const std::size_t count = gather(iov);
        std::array<char, record> piece;
        const void* data = iov[0].iov_base;
        std::size_t size = iov[0].iov_len;
        if (count > 1 && size < record) {
            size = 0;
            for (std::size_t i = 0; i < count && size < record; ++i) {
                const std::size_t take = std::min(iov[i].iov_len, record - size);
                std::memcpy(piece.data() + size, iov[i].iov_base, take);
                size += take;
            }
            data = piece.data();
        }
        const tls_channel::result r = ch.write(data, size);
        switch (r.what) {
            case tls_channel::status::done:
                written(r.bytes);
                if (is_closed()) return;
                continue;
            case tls_channel::status::want_write:
                wait_writable();
                return;
            case tls_channel::status::want_read:  // renegotiation is off: never
            case tls_channel::status::closed:
            case tls_channel::status::failed:
                if (!is_closed())
                    log::debug("connection failed",
                               {{"conn", id()}, {"op", "write"}, {"error", ch.error().empty() ? "closed" : ch.error()}});
                transport_failed();
                return;
        }
    }
}

void ws_session::wait_writable() {
    writing_ = true;
    socket_.async_wait(ws_socket::wait_write, [self = shared_from_this()](const error_code& ec) {
        self->writing_ = false;
        if (ec) {
            self->on_transport_error(ec, "write");
            return;
        }
        self->flush();
    });
}

void ws_session::count(websocket::connection_metric what) {
    using metric = websocket::connection_metric;
    switch (what) {
        case metric::event_sent:
            st_->m.events_sent();
            break;
        case metric::slow_consumer:
            st_->m.slow_consumer_disconnect();
            st_->m.refused("slow_consumer");
            break;
        case metric::shed:
            st_->m.refused("memory_budget");
            break;
        case metric::rejected_shutting_down:
            st_->m.message_rejected("shutting_down");
            break;
        case metric::rejected_binary:
            st_->m.message_rejected("binary");
            break;
        case metric::rejected_too_large:
            st_->m.message_rejected("too_large");
            break;
    }
}

//------------------------------------------------------------------------------
// Closing

void ws_session::end_protocol(bool deferred) {
    if (!deferred) {
        conn_.close();
        if (relay_) relay_->close();
        return;
    }
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
        self->conn_.close();
        if (self->relay_) self->relay_->close();
    });
}

void ws_session::shutdown_send() {
    if (tls()) channel().close_notify();
    error_code ignored;
    socket_.shutdown(ws_socket::shutdown_send, ignored);
}

// shutdown() before close(): the descriptor may have been inherited by a
// child process (a deployed service), and then close() alone would not end
// the TCP connection.
void ws_session::close_transport() {
    error_code ignored;
    socket_.shutdown(ws_socket::shutdown_both, ignored);
    close_socket();  // pending waits complete with operation_aborted
}

}  // namespace registryd
