// One client's connection to the registry's writer, as a standby opens it to
// relay that client's writes (docs/protocol.md "Several registryd"). It is
// the client's own: it carries the client's bearer token, so the writer
// authenticates and rate-limits the real client, and the client's
// session-bound registrations live on it (it closes when the client's
// connection to the standby closes, or the standby dies, and the writer
// gives them their grace period).
//
// A plain WebSocket client over Asio (ws://, or wss:// with `tls`), with the
// daemon's own frame parser (in the role that reads a server's frames) and
// frame encoder (masked frames). Nothing is allocated until the first
// forward(): a standby holds one per client, and most clients never write.
//
// Requests in flight (written, no response yet) are counted by id; when the
// connection is lost (an I/O error, the writer's close frame, silence, an
// oversize frame) each of them is answered through `deliver` with an
// `unavailable` error response, since the request may or may not have been
// carried out. A later forward() opens a new connection.
//
// Everything runs on the io_context's thread.
#pragma once

#include <registry/result.hpp>
#include <registry/task.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace registryd {

struct writer_link_options {
    // TCP connect + TLS handshake + WebSocket upgrade, in all.
    std::chrono::milliseconds open_timeout{2000};
    // Nothing at all from the writer for this long (it pings idle
    // connections every timeouts.idle/2): the link is dead.
    std::chrono::milliseconds silence_timeout{90000};
    // One message from the writer; a larger one fails the link.
    std::size_t max_frame_bytes = 64u << 20;
    // For wss:// URLs: a client context that verifies the writer's
    // certificate (the host name is checked too). Null with wss://: forward()
    // fails saying so.
    boost::asio::ssl::context* tls = nullptr;
};

// The client context a standby verifies a wss:// writer with: TLS 1.2 or
// later, the system's CAs and the PEM CAs of `extra_ca` (empty: none).
// Throws std::runtime_error naming what it could not read.
std::shared_ptr<boost::asio::ssl::context> make_writer_tls_context(const std::filesystem::path& extra_ca);

class writer_link : public std::enable_shared_from_this<writer_link> {
public:
    // `deliver(text, is_response)`: a message of the writer's for the client
    // (responses, and the events a relayed request starts: deploy progress,
    // REPL output). Returns false when the client cannot take it (gone, over
    // its memory budget): the link then closes.
    using deliver_function = std::function<bool(std::string text, bool is_response)>;

    // `url`: ws://host:port/path or wss://...; `bearer_token` empty: none sent.
    writer_link(boost::asio::io_context& ioc, std::string url, std::string bearer_token, writer_link_options opts,
                deliver_function deliver);
    ~writer_link();
    writer_link(const writer_link&) = delete;
    writer_link& operator=(const writer_link&) = delete;

    // Sends one request frame (the client's text, verbatim) whose request id
    // is `id`. Opens the connection first when it is not open; requests that
    // come while it opens wait for it and are sent in order. Completes once
    // the frame is written to the socket. Fails with errc::unavailable (the
    // message names the URL and the cause: refused, timed out, the upgrade's
    // status and body, TLS) without sending when the writer cannot be
    // reached, or when the connection is lost before the frame is written.
    registry::task<registry::result<void>> forward(std::string id, std::string text);

    // The client's connection ended: a close frame (1000), then the socket is
    // closed. Idempotent. Requests in flight get no answer then, and
    // `deliver` is not called any more.
    void close();

    // Another registryd became the writer: the connection ends as if lost
    // (each request in flight is answered `unavailable` with `cause`, since
    // it may or may not have been carried out), and the link takes no more
    // requests.
    void retire(const std::string& cause);

    // A connection to the writer is open (upgraded, not lost).
    bool open() const noexcept;
    const std::string& url() const noexcept { return url_; }

private:
    class connection;  // writer_link.cpp: one connection, shared with its pending operations

    // A connection ended (`cause`), or failed to open: what it had in
    // flight is answered through deliver_.
    void lost(connection& c, bool was_open, const std::string& cause);

    boost::asio::io_context& ioc_;
    std::string url_;
    std::string token_;
    writer_link_options opts_;
    deliver_function deliver_;
    std::shared_ptr<connection> conn_;  // the current one (opening or open); null before the first forward()
    bool closed_ = false;
};

}  // namespace registryd
