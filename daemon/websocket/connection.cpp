#include "websocket/connection.hpp"

#include "observability/log.hpp"

#include <algorithm>
#include <utility>

namespace registryd::websocket {

connection::connection(std::uint64_t id, std::string remote) : id_(id), remote_(std::move(remote)) {}

//------------------------------------------------------------------------------
// Opening

void connection::accept(std::string response, clock::time_point now) {
    queued q;
    q.f.head = std::move(response);
    queue_.push_back(std::move(q));
    state_ = phase::open;
    last_inbound_ = now;
}

void connection::refuse(std::string response, clock::time_point now) {
    state_ = phase::closing;
    peer_closed_ = true;
    deadline_ = now + policy().handshake;
    queued q;
    q.f.head = std::move(response);
    q.what = queued::kind::close;
    queue_.push_back(std::move(q));
}

//------------------------------------------------------------------------------
// Reading

bool connection::wants_read() const noexcept {
    if (parsing_) return false;
    if (state_ == phase::open) return !unread_ && in_flight_ < policy().max_inflight;
    return state_ == phase::closing;
}

void connection::received(std::span<char> in, clock::time_point now) {
    if (state_ == phase::closed) return;
    last_inbound_ = now;
    ping_sent_ = false;
    if (input_failed_) in = {};  // after a protocol error only the hang-up matters
    parse(in, now);
    keep_unread(in, now);
}

// Bytes read before a pause come first, once the requests are below their
// limit again.
void connection::resume(clock::time_point now) {
    if (parsing_ || state_ != phase::open || !unread_ || in_flight_ >= policy().max_inflight) return;
    const std::unique_ptr<std::string> pending = std::move(unread_);
    std::span<char> in(pending->data(), pending->size());
    parse(in, now);
    keep_unread(in, now);
    release(pending->size());
}

// Bytes left unparsed by a pause wait in a buffer of their own (the read
// buffer is the driver's, reused by the next read), released once they are
// parsed.
void connection::keep_unread(std::span<char> rest, clock::time_point now) {
    if (rest.empty() || state_ != phase::open) return;
    if (!charge(rest.size())) {
        shed(now);
        return;
    }
    unread_ = std::make_unique<std::string>(rest.data(), rest.size());
}

void connection::drop_unread() noexcept {
    if (!unread_) return;
    release(unread_->size());
    unread_.reset();
}

void connection::drop_message() noexcept {
    // Not `message_ = std::string()`: assigning a short string keeps the
    // buffer (libstdc++), which the budget would no longer count.
    std::string().swap(message_);
    release(std::exchange(message_charge_, 0));
}

// Parses `in` until it is used up, or the connection pauses (the rest is
// left in `in`) or stops reading.
void connection::parse(std::span<char>& in, clock::time_point now) {
    parsing_ = true;
    while (!in.empty()) {
        if (state_ == phase::open && in_flight_ >= policy().max_inflight) break;
        if (state_ == phase::closed) {
            in = {};
            break;
        }
        const parse_event e = parser_.next(in);
        using kind = parse_event::kind;
        if (e.what == kind::data) {
            on_data(e, now);
        } else if (e.what == kind::ping) {
            if (state_ == phase::open || state_ == phase::draining) queue_pong(e.bytes);
        } else if (e.what == kind::close) {
            on_peer_close(e.code, now);
            in = {};  // nothing may follow a close frame
        } else if (e.what == kind::error) {
            log::debug("websocket protocol error", {{"conn", id_}, {"remote", remote_}, {"error", e.bytes}});
            fail_input(e.code, e.bytes, now);
            in = {};
        }
    }
    parsing_ = false;
}

void connection::on_data(const parse_event& e, clock::time_point now) {
    if (state_ == phase::draining) {
        // Shutting down: nothing more is dispatched.
        drop_message();
        if (e.last) count(connection_metric::rejected_shutting_down);
        return;
    }
    if (state_ != phase::open) return;  // closing: the rest is discarded

    message_bytes_ += e.bytes.size();
    if (message_bytes_ > hard_message_cap()) {
        log::warn("message above the hard cap, connection closed", {{"conn", id_}, {"remote", remote_}});
        fail_input(close_code::too_big, "message too big", now);
        return;
    }
    const std::size_t limit = policy().max_message_bytes;
    if (!discarding_ && (e.binary || message_bytes_ > limit)) {
        discarding_ = true;
        drop_message();
    }
    if (!discarding_) {
        // The message grows by doubling (up to the limit), each step
        // charged to the memory budget before it is allocated.
        const std::size_t need = message_.size() + e.bytes.size();
        if (need > message_charge_) {
            const std::size_t want = std::min(std::max(need, 2 * message_charge_), limit);
            if (!charge(want - message_charge_)) {
                shed(now);
                return;
            }
            message_.reserve(want);
            message_charge_ = want;
        }
        message_.append(e.bytes);
    }
    if (!e.last) return;

    const std::uint64_t bytes = message_bytes_;
    const bool discarded = discarding_;
    // The request owns its bytes; the message state is reset before
    // dispatching: the request may complete inline.
    std::string text = std::exchange(message_, {});
    const std::size_t text_charge = std::exchange(message_charge_, 0);
    message_bytes_ = 0;
    discarding_ = false;
    if (!discarded) {
        dispatch(std::move(text), text_charge);
    } else if (e.binary) {
        count(connection_metric::rejected_binary);
        log::debug("binary message rejected", {{"conn", id_}, {"bytes", bytes}});
        reject(registry::errc::invalid_request, "binary frames are not supported");
    } else {
        count(connection_metric::rejected_too_large);
        log::info("oversize message rejected", {{"conn", id_}, {"remote", remote_}, {"bytes", bytes}, {"limit", limit}});
        reject(registry::errc::payload_too_large, "message of " + std::to_string(bytes) +
                                                      " bytes exceeds the limit of " + std::to_string(limit) +
                                                      " bytes");
    }
}

std::uint64_t connection::hard_message_cap() const noexcept {
    return std::max<std::uint64_t>(hard_message_cap_min, std::uint64_t{policy().max_message_bytes} * 4);
}

void connection::on_peer_close(close_code code, clock::time_point now) {
    if (state_ == phase::closing) {
        // The answer to our close frame (or a close crossing it).
        peer_closed_ = true;
        if (close_sent_) end(true);
        return;
    }
    log::debug("connection closed by peer", {{"conn", id_}, {"code", static_cast<std::uint64_t>(code)}});
    peer_closed_ = true;
    drop_unread();
    // What the peer sent before its close is answered first: requests in
    // flight complete (draining), their responses and those queued are
    // written, then the close is echoed.
    drain_code_ = code == close_code::none ? close_code::normal : code;
    if (state_ == phase::open) state_ = phase::draining;
    if (in_flight_ == 0) {
        begin_close(drain_code_, {}, true, now);
    } else {
        // A request that takes longer does not hold the close: its
        // response is dropped.
        deadline_ = now + policy().handshake;
    }
}

// The peer's input cannot be trusted any more: close with `code`, stop
// parsing, wait for the hang-up.
void connection::fail_input(close_code code, std::string_view why, clock::time_point now) {
    input_failed_ = true;
    drop_message();
    drop_unread();
    if (state_ == phase::closing) return;
    begin_close(code, why, false, now);
}

//------------------------------------------------------------------------------
// Requests

// The message's charge to the memory budget stays with the request until it
// completes.
void connection::dispatch(std::string text, std::size_t charge) {
    ++in_flight_;
    inflight_bytes_ += charge;
    deliver(std::move(text), charge);
}

void connection::request_done(std::size_t charge, clock::time_point now) {
    --in_flight_;
    inflight_bytes_ -= charge;
    release(charge);
    if (state_ == phase::draining) {
        if (in_flight_ == 0) begin_close(drain_code_, peer_closed_ ? "" : "server shutting down", true, now);
        return;
    }
    resume(now);
}

void connection::shutdown(clock::time_point now) {
    if (state_ != phase::open) return;
    state_ = phase::draining;
    drop_unread();
    if (in_flight_ == 0) begin_close(drain_code_, "server shutting down", true, now);
}

//------------------------------------------------------------------------------
// Writing

bool connection::send(registry::protocol::frame f) {
    // The transport is gone or going: the frame has nowhere to go. This is
    // not back-pressure, so it is not refused.
    if (state_ != phase::open && state_ != phase::draining) return true;

    const std::size_t size = f.size();
    if (queued_frames_ != 0 &&
        (queued_frames_ >= policy().outbound_queue_messages || queued_bytes_ + size > policy().outbound_queue_bytes)) {
        count(connection_metric::slow_consumer);
        log::warn("slow consumer: outbound queue full, closing",
                  {{"conn", id_}, {"remote", remote_}, {"queued_messages", queued_frames_}, {"queued_bytes", queued_bytes_}});
        // We are inside the library (send() is called while it fans out
        // events): the protocol connection must end from a fresh handler.
        begin_close(close_code::policy_error, "slow consumer: outbound queue full", false, now());
        return false;
    }
    if (!charge(size)) {
        shed(now());
        return false;
    }

    queued q;
    q.what = f.kind == registry::protocol::frame_kind::event ? queued::kind::event : queued::kind::response;
    q.header = text_frame_header(size);
    q.f = std::move(f);
    push(std::move(q));
    ++queued_frames_;
    queued_bytes_ += size;
    return true;
}

std::uint64_t connection::sheddable() const noexcept {
    if (state_ != phase::open && state_ != phase::draining) return 0;
    return queued_bytes_ + message_charge_ + (unread_ ? unread_->size() : 0);
}

void connection::shed(clock::time_point now) {
    if (state_ != phase::open && state_ != phase::draining) return;
    count(connection_metric::shed);
    log::warn("memory budget exhausted, closing the most expensive connection",
              {{"conn", id_}, {"remote", remote_}, {"charged_bytes", charged()}});
    begin_close(close_code::try_again_later, "server memory budget exhausted", false, now);
}

// Queues bytes of the connection's own (not subject to the queue's bounds).
void connection::enqueue(std::string bytes, queued::kind what) {
    queued q;
    q.f.head = std::move(bytes);
    q.what = what;
    push(std::move(q));
}

// RFC 6455 5.5.3 lets a pong answer only the latest of several pings: a pong
// still waiting unwritten takes the new payload, so a client that pings
// without reading (a ping flood) grows nothing.
void connection::queue_pong(std::string_view payload) {
    if (!queue_.empty() && queue_.back().what == queued::kind::pong && (queue_.size() > 1 || write_offset_ == 0)) {
        queue_.back().f.head = pong_frame(payload);
        return;
    }
    enqueue(pong_frame(payload), queued::kind::pong);
}

void connection::push(queued q) {
    queue_.push_back(std::move(q));
    output_queued();
}

std::size_t connection::gather(std::span<iovec> out) {
    std::size_t count = 0;
    std::size_t skip = write_offset_;
    auto add = [&](const char* data, std::size_t size) {
        if (skip >= size) {
            skip -= size;
            return;
        }
        out[count++] = iovec{const_cast<char*>(data + skip), size - skip};
        skip = 0;
    };
    const std::size_t frames = std::min({queue_.size(), max_frames_per_write, out.size() / 3});
    for (std::size_t i = 0; i < frames; ++i) {
        const queued& q = queue_[i];
        add(q.header.bytes.data(), q.header.size);
        add(q.f.head.data(), q.f.head.size());
        if (q.f.body) add(q.f.body->data(), q.f.body->size());
    }
    return count;
}

void connection::written(std::size_t n) {
    while (n > 0 && !queue_.empty()) {
        queued& q = queue_.front();
        const std::size_t left = q.wire_size() - write_offset_;
        if (n < left) {
            write_offset_ += n;
            return;
        }
        n -= left;
        write_offset_ = 0;
        const queued::kind what = q.what;
        if (what == queued::kind::response || what == queued::kind::event) {
            --queued_frames_;
            queued_bytes_ -= q.f.size();
            release(q.f.size());
        }
        queue_.pop_front();
        if (what == queued::kind::event) count(connection_metric::event_sent);
        if (what == queued::kind::close) on_close_written();
    }
}

// Drops every queued frame except one partly written.
void connection::drop_queue() noexcept {
    const std::size_t keep = write_offset_ > 0 ? 1 : 0;
    while (queue_.size() > keep) {
        const queued& q = queue_.back();
        if (q.what == queued::kind::response || q.what == queued::kind::event) {
            --queued_frames_;
            queued_bytes_ -= q.f.size();
            release(q.f.size());
        }
        queue_.pop_back();
    }
}

//------------------------------------------------------------------------------
// Deadlines

bool connection::due(clock::time_point now) const noexcept {
    switch (state_) {
        case phase::open:
            return now - last_inbound_ >= (ping_sent_ ? policy().idle : policy().idle / 2);
        case phase::closing:
            return now >= deadline_;
        case phase::draining:  // after the peer's close: its requests have until deadline_
            return peer_closed_ && now >= deadline_;
        default:
            return false;
    }
}

void connection::tick(clock::time_point now, std::uint32_t kernel_unsent) {
    if (!due(now)) return;
    if (state_ == phase::draining) {
        log::debug("requests still in flight at the peer's close, closing", {{"conn", id_}, {"in_flight", std::uint64_t{in_flight_}}});
        begin_close(drain_code_, {}, true, now);
        return;
    }
    if (state_ == phase::closing) {
        // A peer that still reads what the kernel holds for it is given the
        // time to read up to the close frame (a slow consumer gets its 1008).
        if (kernel_unsent > 0 && kernel_unsent < kernel_unsent_) {
            kernel_unsent_ = kernel_unsent;
            extend_close_deadline(now);
            return;
        }
        log::debug("closing connection forcibly", {{"conn", id_}});
        end(false);
        return;
    }
    if (!ping_sent_) {
        ping_sent_ = true;
        enqueue(ping_frame({}), queued::kind::control);
        return;
    }
    log::info("connection timed out", {{"conn", id_}, {"remote", remote_}});
    end(false);
}

//------------------------------------------------------------------------------
// Closing

// Closes the WebSocket with `code`: the queue is written (`flush`) or
// dropped (except a frame partly written), then the close frame goes out.
// The protocol connection ends from a fresh handler: begin_close() may be
// called from inside the library (send() during a fan-out, or a request
// completing). Frames sent meanwhile are dropped (state closing).
void connection::begin_close(close_code code, std::string_view reason, bool flush, clock::time_point now) {
    if (state_ == phase::closing || state_ == phase::closed) return;
    state_ = phase::closing;
    drop_unread();
    drop_message();
    if (!flush) drop_queue();
    end_protocol(true);
    extend_close_deadline(now);
    enqueue(close_frame(code, reason), queued::kind::close);
}

void connection::extend_close_deadline(clock::time_point now) {
    deadline_ = now + policy().handshake + close_grace_extra;
}

void connection::on_close_written() {
    close_sent_ = true;
    if (peer_closed_) {
        end(true);
    } else if (input_failed_) {
        // Nothing more will be sent: tell the peer, and wait for its end.
        shutdown_send();
    }
}

void connection::hung_up() {
    if (state_ == phase::closed) return;
    end(state_ == phase::closing);  // closing: after (or instead of) answering our close
}

void connection::transport_failed() {
    if (state_ == phase::closed) return;
    end(false);
}

// The end of the transport: `clean` after a completed closing handshake.
void connection::end(bool clean) {
    if (!clean) end_protocol(false);
    state_ = phase::closed;
    queue_.clear();
    queued_frames_ = 0;
    release(std::exchange(queued_bytes_, 0));
    write_offset_ = 0;
    drop_unread();
    drop_message();
    close_transport();
}

void connection::finish() noexcept {
    state_ = phase::closed;
    drop_message();
    drop_unread();
    release(std::exchange(queued_bytes_, 0));
    queued_frames_ = 0;
}

}  // namespace registryd::websocket
