// The Asio driver of one WebSocket connection: the socket I/O and nothing
// else. websocket::connection (the state machine it derives from) decides;
// the session reads into the loop's read buffer when the machine wants to
// read, writes what it gathers with one sendmsg, and carries out its
// requests (deliver a message to the library's protocol::connection, end
// it, shut down or close the socket). It is the library's outbox.
//
// An idle connection holds no buffer and no composed operation: it waits for
// readability (socket.async_wait), reads into the server loop's one read
// buffer and keeps only what the parser needs between reads. Timeouts are not
// per-connection timers but one server-wide sweep (server::state::sweep)
// over each connection's deadlines.
//
// On a TLS connection (config `tls`) the same loop reads and writes through
// the connection's tls_channel (kept in server::state::tls_channels, so that
// a plain connection carries nothing for it: its size is unchanged): SSL_read into the loop's read
// buffer until OpenSSL wants more input, SSL_write of the gathered frames.
//
// Lifetimes are explicit: a session is owned by shared_ptrs held by its
// pending asynchronous operations and by its in-flight request coroutines;
// it is destroyed when the last of them completes.
#pragma once

#include "http/source_slot.hpp"
#include "http/upgrade_answer.hpp"
#include "server.hpp"
#include "websocket/connection.hpp"

#include <boost/system/error_code.hpp>

#include <registry/async_scope.hpp>
#include <registry/protocol/connection.hpp>
#include <registry/protocol/frame.hpp>
#include <registry/task.hpp>

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace registryd {

class session_relay;
class tls_channel;

// A WebSocket session's socket is bound to the io_context's own executor:
// then a pending wait carries an 8-byte executor instead of two
// any_io_executors, which is most of what an idle connection's pending
// operation costs.
using ws_socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;

// Moves an accepted socket's descriptor into a ws_socket.
ws_socket adopt_socket(boost::asio::io_context& ioc, boost::asio::ip::tcp::socket&& s, boost::system::error_code& ec);

class ws_session final : public std::enable_shared_from_this<ws_session>,
                         public registry::protocol::outbox,
                         private websocket::connection {
public:
    // On a TLS server (st->tls) the connection's tls_channel is in
    // st->tls_channels under `id`.
    // `caller`: who the access gate admitted (null: anonymous).
    ws_session(std::shared_ptr<server::state> st, std::uint64_t id, ws_socket&& socket, std::string remote,
               source_slot slot, std::shared_ptr<const registry::protocol::principal> caller);
    ~ws_session() override;

    ws_session(const ws_session&) = delete;
    ws_session& operator=(const ws_session&) = delete;

    // Answers the upgrade. `early` holds bytes that arrived after the
    // upgrade request in the same read (a pipelining client's first frames):
    // they are parsed first.
    void run(upgrade_answer answer, std::string_view early);

    // On a standby (server::relay_writes): what only the writer serves goes
    // there with the client's `token` (empty: access control is off). Before run().
    void relay_writes(std::string token);

    // Server shutdown (websocket::connection::shutdown).
    void shutdown();
    // The shutdown deadline has passed: the socket closes now; pending waits
    // complete with operation_aborted.
    void close_socket();

    // The sweep's question and its work.
    using connection::due;
    void tick(clock::time_point now);

    using connection::charged;
    using connection::sheddable;
    void shed();

    // Writes what is queued; called once per burst of send()s through
    // server::state::schedule_flush.
    void flush();

    // registry::protocol::outbox
    bool send(registry::protocol::frame f) override;

private:
    // websocket::connection's hooks
    const websocket::connection_policy& policy() const noexcept override;
    bool charge(std::uint64_t n) override;
    void release(std::uint64_t n) noexcept override;
    clock::time_point now() const override { return clock::now(); }
    void output_queued() override;
    void deliver(std::string text, std::size_t charge) override;
    void reject(registry::errc code, std::string message) override;
    void end_protocol(bool deferred) override;
    void shutdown_send() override;
    void close_transport() override;
    void count(websocket::connection_metric what) override;

    void maybe_read();
    void on_readable(const boost::system::error_code& ec);
    void wait_writable();
    void on_transport_error(const boost::system::error_code& ec, std::string_view op);
    void read_tls();
    void flush_tls();
    bool tls() const noexcept;  // every connection of a TLS server is one
    tls_channel& channel() const;

    static registry::task<void> handle_request(std::shared_ptr<ws_session> self, std::string text,
                                               std::size_t charge);
    clock::time_point record(std::string_view action, std::string_view code, clock::time_point start);

    // First: they fit in the tail padding of websocket::connection.
    bool reading_ = false;          // a wait for readability (or a posted read) is pending
    bool may_have_more_ = false;    // the last read filled the read buffer
    bool writing_ = false;          // a wait for writability is pending
    bool flush_scheduled_ = false;  // in server::state's flush list
    std::shared_ptr<server::state> st_;
    source_slot slot_;
    ws_socket socket_;

    registry::protocol::connection conn_;
    std::unique_ptr<session_relay> relay_;  // a standby's connection only (relay_writes)
    // Declared last, destroyed first: it is idle by then (every request
    // coroutine held a reference to this session).
    registry::async_scope scope_;
};

}  // namespace registryd
