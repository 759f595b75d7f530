// A replica's path to the registry's writer (registry::become_replica,
// server::serve_replica): the requests a replica does not serve itself (every
// action but the discover family's reads and subscriptions) are sent on to
// the writer instead of being answered not_writer. One relay per client
// connection (registryd: a WebSocket connection of the client's own to the
// writer, with its credentials), so that the writer sees the client as it is:
// its identity, its rate limits, and its session-bound registrations, which
// end with that connection.
#pragma once

#include <registry/result.hpp>
#include <registry/task.hpp>

#include <string>

namespace registry::protocol {

class relay {
public:
    virtual ~relay() = default;

    // Sends the request frame `text`, as the client sent it (`id`: its id),
    // to the writer. The writer's response, and the events the request
    // starts, reach the connection's outbox by the embedder's own path. An
    // error (the writer cannot be reached) is answered to the request
    // instead; the request was not sent then.
    virtual task<result<void>> forward(std::string id, std::string text) = 0;
};

}  // namespace registry::protocol
