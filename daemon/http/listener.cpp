// The listener: accepts TCP connections and hands each to an http_session,
// within the connection limits (limits.max_connections_per_source,
// limits.max_handshakes, the descriptors the process may open).

#include "http/http_session.hpp"
#include "observability/log.hpp"
#include "server_state.hpp"

#include <cerrno>
#include <chrono>

namespace registryd {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// After a retryable accept error (EMFILE, ENFILE, ENOBUFS, ENOMEM) wait this
// long before accepting again instead of spinning.
constexpr auto accept_backoff = std::chrono::milliseconds(100);

}  // namespace

void server::state::do_accept() {
    acceptor.async_accept([self = shared_from_this()](const error_code& ec, tcp::socket socket) {
        self->on_accept(ec, std::move(socket));
    });
}

void server::state::on_accept(const error_code& ec, tcp::socket socket) {
    if (shutting_down || !acceptor.is_open()) return;
    if (ec) {
        if (ec == asio::error::operation_aborted) return;
        log::warn("accept failed", {{"error", ec.message()}});
        if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space || ec == asio::error::no_memory ||
            ec.value() == ENFILE) {
            backoff.expires_after(accept_backoff);
            backoff.async_wait([self = shared_from_this()](const error_code& e) {
                if (!e && !self->shutting_down) self->do_accept();
            });
            return;
        }
        do_accept();
        return;
    }
    error_code ec2;
    const tcp::endpoint peer = socket.remote_endpoint(ec2);
    if (ec2) {  // already gone
        do_accept();
        return;
    }
    const auto refuse = [&](std::string_view reason) {
        m.refused(reason);
        log::debug("connection refused", {{"reason", reason}, {"remote", peer.address().to_string()}});
        error_code ignored;
        socket.close(ignored);
        do_accept();
    };
    if (const auto it = per_source.find(peer.address());
        it != per_source.end() && it->second.connections >= cfg.limits.max_connections_per_source) {
        refuse("source_quota");
        return;
    }
    // Connections that never upgrade cannot crowd out new ones: the oldest
    // makes room, within limits.max_handshakes and the descriptors.
    if (http_sessions.size() >= cfg.limits.max_handshakes) {
        evict_oldest_handshake("handshake_limit");
    } else if (http_sessions.size() + ws_sessions.size() >= socket_cap && !evict_oldest_handshake("descriptors")) {
        refuse("descriptors");
        return;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    const std::uint64_t id = next_id++;
    std::make_shared<http_session>(shared_from_this(), id, std::move(socket), source_slot(per_source, peer.address()))
        ->run();
    do_accept();
}

bool server::state::evict_oldest_handshake(std::string_view reason) {
    while (!http_sessions.empty()) {
        const auto oldest = http_sessions.begin();
        auto s = oldest->second.lock();
        http_sessions.erase(oldest);  // it is going: not counted any more
        if (!s) continue;
        m.refused(reason);
        log::debug("connection closed to make room", {{"reason", reason}});
        s->close();
        return true;
    }
    return false;
}

}  // namespace registryd
