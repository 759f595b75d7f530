// The server of one event loop (one io_context thread, which is also the
// registry's thread: no strands, no locks). Its parts, after Beast's
// advanced_server example:
//   listener      accepts TCP connections, hands each to an http_session
//                 (http/listener.cpp).
//   http_session  reads HTTP requests (Beast); serves /healthz, /metrics and
//                 the read-only registry view (http/services_view);
//                 on a WebSocket upgrade answers it (http/handshake) and
//                 hands its socket to a ws_session (http/http_session).
//   ws_session    one per WebSocket connection: the Asio driver of the
//                 websocket::connection state machine, which speaks RFC 6455
//                 itself (websocket/); owns the library's
//                 protocol::connection and is its outbox.
//   this file     the state they share (server_state.hpp): the flush list,
//                 the sweep (one server-wide periodic check of every
//                 connection's idle and closing deadlines, no timer per
//                 connection), the memory budget's relief, and the server's
//                 own interface (listen, shutdown).

#include "server.hpp"

#include "http/http_session.hpp"
#include "observability/log.hpp"
#include "server_state.hpp"
#include "tls/tls_context.hpp"
#include "websocket/session.hpp"

#include <registry/registry.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

namespace registryd {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// The server's list of sessions to flush keeps at most this capacity.
constexpr std::size_t flush_list_keep = 4096;

// The sweep runs every quarter of the shortest WebSocket timeout, between
// these bounds: a ping or a close is at most that late.
constexpr auto sweep_period_min = std::chrono::milliseconds(100);
constexpr auto sweep_period_max = std::chrono::milliseconds(1000);

std::chrono::milliseconds sweep_period_for(const config& c) {
    const auto shortest = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::min(c.timeouts.idle, c.timeouts.handshake));
    return std::clamp(shortest / 4, sweep_period_min, sweep_period_max);
}

registry::protocol::limits protocol_limits_from(const config& c) {
    registry::protocol::limits l;
    l.max_message_bytes = c.limits.max_message_bytes;
    l.max_subscriptions = c.limits.max_subscriptions_per_connection;
    l.max_subscriptions_per_source = c.quotas.subscriptions_per_address;
    l.max_page_items = c.listings.max_page_items;
    l.max_open_listings = c.listings.max_open;
    l.max_open_listings_per_connection = c.listings.max_open_per_connection;
    l.rates = c.rate_limits;
    l.serve_stale_reads = c.store.stale_reads == config::store_section::stale_reads_policy::serve;
    return l;
}

websocket::connection_policy connection_policy_from(const config& c) {
    websocket::connection_policy p;
    p.max_message_bytes = c.limits.max_message_bytes;
    p.max_inflight = c.limits.max_inflight_per_connection;
    p.outbound_queue_messages = c.limits.outbound_queue_messages;
    p.outbound_queue_bytes = c.limits.outbound_queue_bytes;
    p.idle = c.timeouts.idle;
    p.handshake = c.timeouts.handshake;
    return p;
}

}  // namespace

server::state::state(asio::io_context& io, const config& c, registry::registry& r, metrics& mm,
                     std::function<metrics::gauges()> g, access::gate& a)
    : ioc(io),
      cfg(c),
      policy(connection_policy_from(c)),
      reg(r),
      proto(r, protocol_limits_from(c)),
      m(mm),
      gauges(std::move(g)),
      gate(a),
      acceptor(io),
      backoff(io),
      sweep_timer(io),
      sweep_period(sweep_period_for(c)),
      budget(c.limits.memory_budget_bytes) {
    m.watch(budget);
}

//------------------------------------------------------------------------------
// Flushing and the sweep

void server::state::schedule_flush(std::shared_ptr<ws_session> s) {
    to_flush.push_back(std::move(s));
    if (to_flush.size() == 1) asio::post(ioc, [self = shared_from_this()] { self->flush_scheduled(); });
}

void server::state::flush_scheduled() {
    // Sessions scheduled while these flush wait for the next round.
    std::vector<std::shared_ptr<ws_session>> now;
    now.swap(to_flush);
    for (auto& s : now) s->flush();
    now.clear();
    // Keep the capacity of an ordinary burst (a fan-out to a few thousand).
    if (to_flush.empty() && now.capacity() <= flush_list_keep) to_flush.swap(now);
}

void server::state::arm_sweep() {
    sweep_timer.expires_after(sweep_period);
    sweep_timer.async_wait([self = shared_from_this()](const error_code& ec) {
        if (!ec) self->sweep();
    });
}

void server::state::sweep() {
    const auto now = std::chrono::steady_clock::now();
    // Collected first: what a session does on its tick must not change the
    // map being walked. Every live session has an owner besides this lock.
    std::vector<std::shared_ptr<ws_session>> due;
    for (const auto& [id, w] : ws_sessions) {
        auto s = w.lock();
        if (s && s->due(now)) due.push_back(std::move(s));
    }
    for (auto& s : due) s->tick(now);
    due.clear();
    if (shutting_down && ws_sessions.empty()) return;
    arm_sweep();
}

//------------------------------------------------------------------------------
// The memory budget and the connection limits

bool server::state::relieve(std::uint64_t n, const ws_session& asking) {
    // Scans every connection: this runs only when the budget is short.
    for (int round = 0; round < 16; ++round) {
        std::shared_ptr<ws_session> victim;
        std::uint64_t most = asking.charged() + n;
        for (const auto& [id, w] : ws_sessions) {
            auto s = w.lock();
            if (!s || s.get() == &asking || s->sheddable() == 0) continue;
            if (s->charged() > most) {
                most = s->charged();
                victim = std::move(s);
            }
        }
        if (!victim) return false;
        victim->shed();
        if (budget.try_charge(n)) return true;
    }
    return false;
}

//------------------------------------------------------------------------------
// server

server::server(asio::io_context& ioc, const config& cfg, registry::registry& reg, metrics& m,
               std::function<metrics::gauges()> gauges, access::gate& gate)
    : state_(std::make_shared<state>(ioc, cfg, reg, m, std::move(gauges), gate)) {}

server::~server() {
    error_code ignored;
    state_->acceptor.close(ignored);
    state_->backoff.cancel();
    state_->sweep_timer.cancel();
}

registry::protocol::server& server::protocol() noexcept { return state_->proto; }
void server::audit_to(audit_log* log) noexcept { state_->audit = log; }
void server::report_store(std::function<store_health()> health) { state_->store_health = std::move(health); }

void server::relay_writes(const relay_target& target) noexcept { state_->relay = &target; }

void server::offer_engines(const engine_offer& offer) noexcept { state_->offered_engines = &offer; }

void server::offer_targets(std::shared_ptr<target_offer> offer) noexcept { state_->offered_targets = std::move(offer); }

listen_address server::listen() {
    auto& st = *state_;
    const auto& want = st.cfg.listen;
    const std::string shown = want.to_string();
    if (st.cfg.tls) st.tls = std::make_unique<tls_context>(*st.cfg.tls);  // throws, naming the file

    error_code ec;
    tcp::endpoint ep;
    const auto addr = asio::ip::make_address(want.host, ec);
    if (!ec) {
        ep = tcp::endpoint(addr, want.port);
    } else {
        tcp::resolver resolver(st.ioc);
        auto results = resolver.resolve(want.host, std::to_string(want.port), tcp::resolver::passive, ec);
        if (ec || results.empty()) {
            throw std::runtime_error("cannot resolve listen host \"" + want.host +
                                     "\": " + (ec ? ec.message() : std::string("no address")));
        }
        ep = results.begin()->endpoint();
    }

    auto check = [&](std::string_view what) {
        if (ec) throw std::runtime_error("cannot listen on " + shown + ": " + std::string(what) + ": " + ec.message());
    };
    st.acceptor.open(ep.protocol(), ec);
    check("open");
    st.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    check("setsockopt");
    st.acceptor.bind(ep, ec);
    check("bind");
    st.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    check("listen");
    const tcp::endpoint bound = st.acceptor.local_endpoint(ec);
    check("getsockname");

    rlimit rl{};
    st.socket_cap = std::numeric_limits<std::size_t>::max();
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        st.socket_cap = rl.rlim_cur > descriptor_reserve ? rl.rlim_cur - descriptor_reserve : 1;

    st.do_accept();
    st.arm_sweep();
    return listen_address{bound.address().to_string(), bound.port()};
}

void server::shutdown(std::function<void()> on_drained) {
    auto& st = *state_;
    st.shutting_down = true;
    st.on_drained = std::move(on_drained);
    error_code ignored;
    st.acceptor.close(ignored);
    st.backoff.cancel();

    auto https = st.live(st.http_sessions);
    auto wss = st.live(st.ws_sessions);

    log::info("shutting down", {{"websocket_connections", wss.size()}, {"http_connections", https.size()}});
    for (auto& s : https) s->shutdown();
    for (auto& s : wss) s->shutdown();
    https.clear();
    wss.clear();
    st.check_drained();
}

void server::force_close() {
    auto& st = *state_;
    for (auto& s : st.live(st.http_sessions)) s->close();
    for (auto& s : st.live(st.ws_sessions)) s->close_socket();
}

bool server::reload_tls(std::string& why) {
    if (!state_->tls) return true;
    return state_->tls->reload(why);
}

std::size_t server::connections() const noexcept {
    return state_->http_sessions.size() + state_->ws_sessions.size();
}


}  // namespace registryd
