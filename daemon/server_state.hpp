// What the listener, the sessions and the sweep of one server share: the
// state of its event loop (one io_context thread; no strands, no locks).
// Everything a connection reuses between reads lives here, not in a global,
// so that several loops could each have their own server later.
#pragma once

#include "server.hpp"

#include "http/source_slot.hpp"
#include "observability/audit_log.hpp"
#include "tls/tls_channel.hpp"
#include "tls/tls_context.hpp"
#include "websocket/connection.hpp"
#include "websocket/memory_budget.hpp"

#include <registry/protocol/connection.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace registryd {

struct engine_offer;
class target_offer;
class http_session;
struct relay_target;
class ws_session;

// Sessions hold a shared_ptr to it.
struct server::state : std::enable_shared_from_this<server::state> {
    // WebSocket input is read in pieces of at most this many bytes, into the
    // loop's one read buffer (nothing is kept in it between reads).
    static constexpr std::size_t read_chunk_bytes = 64 * 1024;

    state(boost::asio::io_context& io, const config& c, registry::registry& r, metrics& mm,
          std::function<metrics::gauges()> g, access::gate& a);

    boost::asio::io_context& ioc;
    const config cfg;
    const websocket::connection_policy policy;
    registry::registry& reg;
    registry::protocol::server proto;
    metrics& m;
    std::function<metrics::gauges()> gauges;
    access::gate& gate;  // who may connect (access/gate.hpp)
    audit_log* audit = nullptr;  // audit.file (server::audit_to); null: none
    std::function<registryd::store_health()> store_health;  // server::report_store; empty: a file
    const relay_target* relay = nullptr;  // a standby's (server::relay_writes); null: a writer, or none
    const engine_offer* offered_engines = nullptr;  // a member's (server::offer_engines); null: none
    std::shared_ptr<target_offer> offered_targets;   // a member's (server::offer_targets); null: none

    // What the WebSocket sessions report of each request: the audit line
    // when it is audited (metrics count it in metrics::request).
    void audit_request(const registry::protocol::outcome& o, std::string_view source) {
        if (audit && audit_log::audited(o, proto.family_of(o.action))) audit->request(o, source);
    }
    // A request refused at the door (401, 403, 429; access/gate.hpp): counted
    // in registryd_refusals_total{reason} and audited with the gate's code.
    // `reason` says what was wrong, never the credential.
    void upgrade_refused(std::string_view source, unsigned status, std::string_view code, std::string_view reason) {
        m.refusal(status == 401 ? "unauthorized" : status == 429 ? "rate_limited" : "forbidden");
        if (audit) audit->upgrade_refused(source, code, reason);
    }

    boost::asio::ip::tcp::acceptor acceptor;
    boost::asio::steady_timer backoff;
    boost::asio::steady_timer sweep_timer;
    const std::chrono::milliseconds sweep_period;

    // The WebSocket sessions' read buffer, and their request parser.
    std::array<char, read_chunk_bytes> read_buffer;
    registry::protocol::loop_context loop;

    // Sessions with frames to write, flushed together by one posted handler:
    // the frames each one queues meanwhile (pipelined responses, the events
    // of a change) go out in one write.
    std::vector<std::shared_ptr<ws_session>> to_flush;

    std::uint64_t next_id = 1;  // connection ids; also the registry's session ids (never 0)
    // Connections not (yet) upgraded, oldest (lowest id) first: at
    // limits.max_handshakes the oldest is closed for a new one.
    std::map<std::uint64_t, std::weak_ptr<http_session>> http_sessions;
    std::unordered_map<std::uint64_t, std::weak_ptr<ws_session>> ws_sessions;
    // Connections per source address (limits.max_connections_per_source).
    source_slot::counts per_source;
    // Sockets the server may hold: RLIMIT_NOFILE less server::descriptor_reserve.
    std::size_t socket_cap = 0;

    memory_budget budget;

    // config `tls`: the context new connections are made with (null: plain),
    // and the TLS state of the upgraded connections by connection id. Kept
    // here, not in ws_session, so that a plain connection costs nothing more.
    std::unique_ptr<tls_context> tls;
    std::unordered_map<std::uint64_t, tls_channel> tls_channels;

    bool shutting_down = false;
    std::function<void()> on_drained;

    // The listener (http/listener.cpp).
    void do_accept();
    void on_accept(const boost::system::error_code& ec, boost::asio::ip::tcp::socket socket);
    // Closes the oldest connection that has not upgraded (to make room).
    bool evict_oldest_handshake(std::string_view reason);

    void schedule_flush(std::shared_ptr<ws_session> s);
    void flush_scheduled();

    void arm_sweep();
    void sweep();

    // Frees at least `n` bytes of the memory budget by shedding the most
    // expensive WebSocket connections, as long as they cost more than
    // `asking` does with `n` more; false if that is not enough (the asking
    // connection is then the most expensive).
    bool relieve(std::uint64_t n, const ws_session& asking);

    void check_drained() {
        if (!shutting_down || !on_drained || !http_sessions.empty() || !ws_sessions.empty()) return;
        boost::asio::post(ioc, std::exchange(on_drained, {}));
    }

    // The sessions still alive, held: shutting one down may end it and erase
    // it from the map, so callers walk this copy instead.
    template <typename Map>
    static auto live(const Map& sessions) {
        using session = typename Map::mapped_type::element_type;
        std::vector<std::shared_ptr<session>> out;
        for (const auto& [id, w] : sessions)
            if (auto s = w.lock()) out.push_back(std::move(s));
        return out;
    }
};

}  // namespace registryd
