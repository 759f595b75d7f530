// An Asio AsyncReadStream/AsyncWriteStream over a tls_channel and its socket,
// for Beast's HTTP reads and writes in the HTTP session (and the TLS
// handshake before them). Each operation tries the channel, waits for the
// readiness it asks for, and tries again; the first try runs after a post,
// so that a handler never runs inside its initiating call. Timeouts are the
// session's (it closes the socket: a pending wait ends with
// operation_aborted).
#pragma once

#include "tls/tls_channel.hpp"

#include <boost/asio/compose.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstddef>
#include <string>

namespace registryd {

class tls_stream {
public:
    using socket_type = boost::asio::ip::tcp::socket;
    using executor_type = socket_type::executor_type;

    tls_stream(socket_type& socket, tls_channel& channel) : socket_(socket), channel_(channel) {}

    executor_type get_executor() { return socket_.get_executor(); }

    template <typename Handler>
    auto async_handshake(Handler&& handler) {
        return async(op::handshake, nullptr, 0, {}, std::forward<Handler>(handler));
    }

    // Into the first non-empty buffer.
    template <typename MutableBuffers, typename Handler>
    auto async_read_some(const MutableBuffers& buffers, Handler&& handler) {
        boost::asio::mutable_buffer b;
        for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers);
             ++it) {
            b = *it;
            if (b.size() > 0) break;
        }
        return async(op::read, b.data(), b.size(), {}, std::forward<Handler>(handler));
    }

    // Up to one record of the buffers, copied into one piece (Beast hands a
    // response's header over field by field: one record each otherwise).
    template <typename ConstBuffers, typename Handler>
    auto async_write_some(const ConstBuffers& buffers, Handler&& handler) {
        std::string piece(std::min(boost::asio::buffer_size(buffers), record_bytes), '\0');
        boost::asio::buffer_copy(boost::asio::buffer(piece), buffers);
        return async(op::write, nullptr, 0, std::move(piece), std::forward<Handler>(handler));
    }

private:
    enum class op { handshake, read, write };
    static constexpr std::size_t record_bytes = 16 * 1024;

    struct io_op {
        tls_stream& s;
        op what;
        void* data;
        std::size_t size;
        std::string piece;  // what a write writes
        bool started = false;

        template <typename Self>
        void operator()(Self& self, boost::system::error_code ec = {}) {
            if (!started) {
                started = true;
                boost::asio::post(s.socket_.get_executor(), std::move(self));
                return;
            }
            if (ec) {
                self.complete(ec, 0);
                return;
            }
            if ((what == op::read && size == 0) || (what == op::write && piece.empty())) {
                self.complete({}, 0);
                return;
            }
            tls_channel::result r;
            switch (what) {
                case op::handshake:
                    r = s.channel_.handshake();
                    break;
                case op::read:
                    r = s.channel_.read(data, size);
                    break;
                case op::write:
                    r = s.channel_.write(piece.data(), piece.size());
                    break;
            }
            switch (r.what) {
                case tls_channel::status::done:
                    self.complete({}, r.bytes);
                    return;
                case tls_channel::status::want_read:
                    s.socket_.async_wait(socket_type::wait_read, std::move(self));
                    return;
                case tls_channel::status::want_write:
                    s.socket_.async_wait(socket_type::wait_write, std::move(self));
                    return;
                case tls_channel::status::closed:
                    if (what == op::read) {
                        self.complete(boost::asio::error::eof, 0);
                    } else {
                        self.complete(boost::asio::error::broken_pipe, 0);
                    }
                    return;
                case tls_channel::status::failed:
                    // The reason is the channel's error().
                    self.complete(boost::asio::error::connection_aborted, 0);
                    return;
            }
        }
    };

    template <typename Handler>
    auto async(op what, void* data, std::size_t size, std::string piece, Handler&& handler) {
        return boost::asio::async_compose<Handler, void(boost::system::error_code, std::size_t)>(
            io_op{*this, what, data, size, std::move(piece)}, handler, socket_);
    }

    socket_type& socket_;
    tls_channel& channel_;
};

}  // namespace registryd
