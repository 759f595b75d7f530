// The read-only HTTP view of the registry, for curl and scripts:
//
//   GET /v1/services[?name=&state=&limit=&after=]   instances, in instance_id order
//   GET /v1/services/NAME[?limit=&after=]            that name's instances (404 when none)
//
// The service objects are the protocol's (the library's codec writes them).
// Pages hold at most listings.max_page_items instances; a page that is not
// the last ends with "after" (the instance_id to continue after) and
// "remaining". Unlike a WebSocket listing, each page reads the registry as it
// is when asked (there is no listing to hold between stateless requests).
// Errors are JSON {"code", "message"} with the protocol's codes. Access
// follows the WebSocket's rules (docs/protocol.md, "Authentication and
// authorization": the `discover` family), checked by the HTTP session before
// it asks the view (access/gate.hpp). Free of Beast, for tests.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <registry/identity.hpp>

namespace registry {
class registry;
}

namespace registryd {

struct view_answer {
    unsigned status = 200;
    std::string body;        // JSON
    std::string_view allow;  // with 405: the methods the view allows
};

// nullopt: `target` (path and query) is not under /v1/services. Lease ids
// are shown to `viewer` only where it holds the lease (or is an admin), as
// on the WebSocket.
std::optional<view_answer> answer_services_view(std::string_view method, std::string_view target,
                                                const registry::registry& reg, std::size_t max_page_items,
                                                const registry::identity& viewer = registry::identity::anonymous());

}  // namespace registryd
