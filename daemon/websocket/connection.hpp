// The server side of one WebSocket connection (RFC 6455) as a state machine
// without I/O: it is told what happened (bytes read, bytes written, a frame
// to send, a request completed, the time, a server shutdown) and asks for
// what to do through the hooks a driver implements (deliver this message,
// close the transport, shut down sending, end the protocol connection, draw
// from the memory budget) and through what it holds (the bytes to write,
// gathered by gather(); whether to read, wants_read()). The Asio driver is
// websocket/session; the unit tests drive it with bytes and a fake clock.
//
// It owns the frame parser and writer, the outbound queue, the close
// handshake, ping/pong coalescing, the idle and closing deadlines, the
// message size policies and the memory budget accounting:
//
// MEMORY BUDGET (docs/protocol.md, "Limits"):
//   The message being assembled, the texts of requests in flight, bytes kept
//   while paused and the queued library frames are charged (charge()) before
//   they are allocated (a message grows by doubling up to
//   limits.max_message_bytes). A charge that does not fit sheds the
//   connections that hold more (the driver's charge()); if this one holds the
//   most, it is closed itself: 1013, reason "server memory budget exhausted",
//   its queue and partial message dropped at once. Control frames are not
//   charged: at most one pong waits unwritten (queue_pong), plus one idle
//   ping and the close frame.
//
// Outbound (send()):
//   Frames go into a bounded FIFO queue, each entry holding its frame header
//   inline and the library's {head, *body} (never copied); gather() hands
//   out every queued frame (up to max_frames_per_write) for one gather
//   write. SLOW-CONSUMER POLICY: when a frame arrives while the queue already
//   holds limits.outbound_queue_messages frames, or would then hold more
//   than limits.outbound_queue_bytes bytes, send() refuses it (returns false;
//   the library ends the connection's subscriptions) and the connection
//   closes with 1008 (policy violation), reason "slow consumer: outbound
//   queue full". Frames still queued are dropped; a frame partly written is
//   finished first, then the close frame is sent. An empty queue always
//   takes one frame, so a single response larger than outbound_queue_bytes
//   is still delivered. The client is expected to reconnect and resume with
//   from_revision (it loses nothing).
//
// Inbound (received()):
//   Frames are parsed as they arrive. A protocol violation (unmasked frame,
//   reserved bit, unknown opcode, bad fragmentation, bad close frame) closes
//   the connection with 1002, a text message that is not UTF-8 with 1007.
//   Pings are answered with a pong carrying their payload, also between the
//   fragments of a message; a pong not yet written answers the latest ping
//   only. OVERSIZE POLICY: a text message longer than
//   limits.max_message_bytes is not an error of the connection: the rest of
//   it is read and discarded, and once it is complete the client gets
//   {id:null, error:{code:"payload_too_large"}} (reject()); the connection
//   stays open. Binary messages are discarded likewise and answered with
//   invalid_request. Only a message above the hard cap (max(64 MiB, 4 x
//   max_message_bytes)) fails the connection: close 1009. Each complete text
//   message is handed to deliver(). At most limits.max_inflight_per_connection
//   of them run at once: at that count the connection stops reading until one
//   completes (TCP back-pressure; bytes already read wait in a buffer
//   released once they are parsed). (While reading is paused no inbound
//   traffic is seen: a pause longer than timeouts.idle_seconds, i.e. a
//   stalled store, ends in an idle timeout.)
//
// Idle timeout (tick()):
//   After timeouts.idle_seconds / 2 without inbound traffic a ping is sent;
//   after timeouts.idle_seconds without any the TCP connection is closed (no
//   close frame: the peer is presumed gone).
//
// Closing:
//   On a read/write error (transport_failed()): the protocol connection ends
//   at once, the queue is dropped; in-flight requests run to completion
//   (their responses are discarded).
//   On the peer's close frame: nothing after it is read; as on a server
//   shutdown (below) the requests before it complete (within
//   timeouts.handshake_seconds) and their responses are sent, then the close
//   is answered with the peer's code (1000 if it gave none) and the
//   transport is closed.
//   On server shutdown (shutdown()): stop reading, let in-flight requests
//   complete (their responses are still sent), end the protocol connection,
//   flush the queue, close with 1001 (going away).
//   A close the server starts waits for the peer's close frame (reading and
//   discarding anything else) for at most timeouts.handshake_seconds + 1 s,
//   then the transport is closed under it; after a protocol error the server
//   stops sending and only waits for the peer to hang up, as long. The
//   deadline starts again while the kernel's send queue (tick()'s
//   `kernel_unsent`) shrinks: a peer that still reads, however slowly, gets
//   up to the close frame.
#pragma once

#include "websocket/close_code.hpp"
#include "websocket/frame_fifo.hpp"
#include "websocket/frame_parser.hpp"
#include "websocket/frame_writer.hpp"

#include <registry/error.hpp>
#include <registry/protocol/frame.hpp>

#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace registryd::websocket {

// The policies every connection of a server follows (from its configuration).
struct connection_policy {
    std::size_t max_message_bytes = 1 << 20;
    std::size_t max_inflight = 64;
    std::size_t outbound_queue_messages = 4096;
    std::size_t outbound_queue_bytes = 4 << 20;
    std::chrono::steady_clock::duration idle = std::chrono::seconds(60);
    std::chrono::steady_clock::duration handshake = std::chrono::seconds(10);
};

// What a connection counts (the driver's metrics).
enum class connection_metric : std::uint8_t {
    event_sent,              // a frame carrying an event was written
    slow_consumer,           // closed for a full outbound queue
    shed,                    // closed for the memory budget
    rejected_shutting_down,  // a message completed while shutting down
    rejected_binary,
    rejected_too_large,
};

class connection {
public:
    using clock = std::chrono::steady_clock;

    // At most this many queued frames go out in one gather write (3 buffers each).
    static constexpr std::size_t max_frames_per_write = 64;
    static constexpr std::size_t max_write_buffers = 3 * max_frames_per_write;

    // Beyond limits.max_message_bytes a message is read and discarded (the
    // connection survives). Beyond this hard cap the connection is closed
    // with 1009: nobody legitimately streams that much into a registry
    // request.
    static constexpr std::uint64_t hard_message_cap_min = 64 * 1024 * 1024;

    // How long a closing connection may take (its last write, the close
    // frame and the peer's reply) beyond timeouts.handshake before its
    // transport is closed under it.
    static constexpr auto close_grace_extra = std::chrono::seconds(1);

    connection(std::uint64_t id, std::string remote);
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    //--------------------------------------------------------------------------
    // What happened

    // The upgrade was accepted: `response` (the 101) is the first thing
    // written, and the connection is open.
    void accept(std::string response, clock::time_point now);
    // The upgrade was refused: `response` is the last thing written, then
    // the transport is closed.
    void refuse(std::string response, clock::time_point now);

    // Bytes read from the peer (unmasked in place). What a pause leaves
    // unparsed is kept (charged) and parsed once a request completes.
    void received(std::span<char> in, clock::time_point now);

    // The peer ended its side of the stream: the end of a close handshake
    // when closing, a failure otherwise.
    void hung_up();
    // A read or write failed.
    void transport_failed();

    // `n` bytes of what gather() gave were written.
    void written(std::size_t n);

    // A request deliver() started has completed; `charge` is given back.
    void request_done(std::size_t charge, clock::time_point now);

    // Server shutdown, see the class comment.
    void shutdown(clock::time_point now);

    // A frame of the library's (registry::protocol::outbox::send()). Called
    // for every frame: it asks the time (now()) only when it closes.
    bool send(registry::protocol::frame f);

    // The memory budget is short and this connection costs the most: close
    // it with 1013, dropping what it holds.
    void shed(clock::time_point now);

    // Does tick() have something to do at `now`?
    bool due(clock::time_point now) const noexcept;
    // Idle ping and timeout, closing deadline. `kernel_unsent`: the bytes the
    // transport still holds unsent (0 if unknown), asked only when closing().
    void tick(clock::time_point now, std::uint32_t kernel_unsent);

    // The end: everything charged is given back; nothing more is sent.
    void finish() noexcept;

    //--------------------------------------------------------------------------
    // What to do

    // Fills `out` with the queued bytes, from where the last write stopped;
    // returns how many buffers it used.
    std::size_t gather(std::span<iovec> out);
    bool has_output() const noexcept { return !queue_.empty(); }

    // Whether the driver should read: open and not paused (requests at
    // their limit, or bytes kept from before a pause), or closing (for the
    // peer's answer). Never while parsing (a request completing inline).
    bool wants_read() const noexcept;

    bool is_open() const noexcept { return state_ == phase::open; }
    bool is_closing() const noexcept { return state_ == phase::closing; }
    bool is_closed() const noexcept { return state_ == phase::closed; }

    // What this connection holds of the memory budget.
    std::uint64_t charged() const noexcept { return sheddable() + inflight_bytes_; }
    // What closing it would give back at once (requests in flight keep
    // theirs until they complete).
    std::uint64_t sheddable() const noexcept;

    std::uint64_t id() const noexcept { return id_; }
    const std::string& remote() const noexcept { return remote_; }
    std::size_t in_flight() const noexcept { return in_flight_; }

protected:
    ~connection() = default;

    //--------------------------------------------------------------------------
    // Hooks: the effects it asks for, implemented by the driver.

    // Draws `n` bytes from the memory budget (shedding more expensive
    // connections if it is short); false if this one is the most expensive.
    // The server's policies (asked, not held: a reference would cost every
    // idle connection 8 bytes).
    virtual const connection_policy& policy() const noexcept = 0;
    virtual bool charge(std::uint64_t n) = 0;
    virtual void release(std::uint64_t n) noexcept = 0;
    // The time, for send() (the other inputs are given it).
    virtual clock::time_point now() const = 0;
    // Something was queued: gather() and write it soon.
    virtual void output_queued() = 0;
    // A complete text message: handle it as a request, then call
    // request_done(charge).
    virtual void deliver(std::string text, std::size_t charge) = 0;
    // Answer a message that is not handled (oversize, binary) with an error.
    virtual void reject(registry::errc code, std::string message) = 0;
    // End the protocol connection (its subscriptions): `deferred` from a
    // fresh handler, as this may be called from inside the library.
    virtual void end_protocol(bool deferred) = 0;
    // Nothing more will be written: tell the peer (TCP FIN), keep reading.
    virtual void shutdown_send() = 0;
    // Close the transport (both directions).
    virtual void close_transport() = 0;
    virtual void count(connection_metric what) = 0;

private:
    enum class phase : std::uint8_t {
        created,
        open,      // reading and writing
        draining,  // server shutdown or the peer's close: no more requests, waiting for those in flight
        closing,   // closed; flushing, closing the WebSocket
        closed,    // transport gone
    };

    struct queued {
        enum class kind : std::uint8_t {
            response,  // a library frame
            event,     // a library frame carrying an event (counted once written)
            control,   // bytes written as they are (ping, the 101 response)
            pong,      // at most one waits unwritten (queue_pong)
            close,     // the last bytes written (close frame, refusal)
        };
        registry::protocol::frame f;
        frame_header header;  // empty unless a library frame
        kind what = kind::control;

        std::size_t wire_size() const noexcept { return header.size + f.size(); }
    };

    void resume(clock::time_point now);
    void keep_unread(std::span<char> rest, clock::time_point now);
    void drop_unread() noexcept;
    void drop_message() noexcept;
    void parse(std::span<char>& in, clock::time_point now);
    void on_data(const parse_event& e, clock::time_point now);
    std::uint64_t hard_message_cap() const noexcept;
    void on_peer_close(close_code code, clock::time_point now);
    void fail_input(close_code code, std::string_view why, clock::time_point now);
    void dispatch(std::string text, std::size_t charge);

    void enqueue(std::string bytes, queued::kind what);
    void queue_pong(std::string_view payload);
    void push(queued q);
    void drop_queue() noexcept;

    void begin_close(close_code code, std::string_view reason, bool flush, clock::time_point now);
    void extend_close_deadline(clock::time_point now);
    void on_close_written();
    void end(bool clean);

    const std::uint64_t id_;
    const std::string remote_;

    // Outbound queue.
    frame_fifo<queued> queue_;
    std::size_t queued_frames_ = 0;  // library frames in queue_ (the bounds count only them)
    std::size_t queued_bytes_ = 0;
    std::size_t write_offset_ = 0;  // bytes of queue_.front() already written

    // Inbound.
    frame_parser parser_;
    std::string message_;  // the text message being assembled
    std::uint64_t message_bytes_ = 0;
    std::unique_ptr<std::string> unread_;  // read while paused, not yet parsed

    // Charged to the memory budget, besides queued_bytes_ and unread_'s size.
    std::size_t message_charge_ = 0;  // message_'s reserved capacity
    std::size_t inflight_bytes_ = 0;  // the texts of requests in flight

    clock::time_point last_inbound_{};
    clock::time_point deadline_{};  // closing: when the transport is closed under it
    phase state_ = phase::created;
    bool parsing_ = false;      // inside parse(): requests completing inline must not read
    bool discarding_ = false;   // the current message is over the limit or binary
    bool ping_sent_ = false;    // an idle ping is out since the last inbound bytes
    bool close_sent_ = false;
    bool peer_closed_ = false;   // the peer's close frame arrived (or a refusal is being written)
    bool input_failed_ = false;  // a protocol error: the rest of the input is ignored
    // The close code sent once draining ends: 1001 for a server shutdown,
    // the peer's code after its close frame.
    close_code drain_code_ = close_code::going_away;
    // Closing: the least the kernel's send queue held at a closing deadline.
    std::uint32_t kernel_unsent_ = std::numeric_limits<std::uint32_t>::max();
    // Last, 32 bits: with the flags above it leaves 4 bytes of tail padding,
    // where the driver's own flags go (an idle connection's size).
    std::uint32_t in_flight_ = 0;
};

}  // namespace registryd::websocket
