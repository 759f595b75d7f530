// An outbound WebSocket text frame: a small per-recipient head followed by a
// body that may be shared by many recipients (an event encoded once and fanned
// out). The frame's text is head + *body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace registry::protocol {

// What a frame carries, set by whoever encodes it, so that a transport can
// tell (for its metrics) without reading the JSON.
enum class frame_kind : std::uint8_t {
    response,  // {"type":"response",...}: the answer to a request, success or error
    event,     // {"type":"event",...}: a subscription's event, or a request's progress/output event
};

struct frame {
    std::string head;
    std::shared_ptr<const std::string> body;  // may be null
    frame_kind kind = frame_kind::response;  // every encoder states it

    std::size_t size() const noexcept { return head.size() + (body ? body->size() : 0); }
    std::string text() const { return body ? head + *body : head; }
};

// Where a connection's frames go. Implemented by the embedder (registryd's
// WebSocket session). send() must not block: it queues or refuses.
class outbox {
public:
    virtual ~outbox() = default;

    // Must not destroy the connection from inside send(); calling
    // connection::close() from inside it is safe.
    // false: the queue is full. The connection stops its subscriptions and
    // the embedder is expected to close the transport (slow consumer).
    virtual bool send(frame f) = 0;
};

}  // namespace registry::protocol
