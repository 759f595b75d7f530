// What the connections of one event loop share, and only they: the request
// parser and the buffers it reuses. It is single-threaded (a request is
// decoded whole before its handler first suspends, so one parser serves
// every connection of a loop), which is why it belongs to a loop and not to
// the server: connections on several loops share one protocol::server and
// each loop's connections their own loop_context.
//
// The embedder makes one per event loop (registryd runs one loop: one
// instance) and passes it to every connection it makes on that loop; it
// outlives them.
#pragma once

#include <memory>

namespace registry::protocol {

class loop_context {
public:
    loop_context();
    ~loop_context();
    loop_context(const loop_context&) = delete;
    loop_context& operator=(const loop_context&) = delete;

    struct impl;
    impl& internals() noexcept;

private:
    std::unique_ptr<impl> impl_;
};

}  // namespace registry::protocol
