// Reads a request frame's envelope strictly against docs/protocol.md (id,
// type, action, params; unknown or duplicate fields, wrong types) and has
// the dispatch table's entry read the params and make the task that answers
// the request. The params' readers are their modules' (services/params.cpp,
// containers/params.cpp, ...).
#pragma once

#include "dispatch.hpp"

#include <registry/error.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace simdjson::dom {
class element;
}

namespace registry::protocol {

// A frame that is not a valid request, and what to answer.
struct rejection {
    std::optional<std::string> id;  // null in the response when the id was unreadable
    std::string_view action;        // empty unless the action was recognised
    error err;
};

// A frame a replica's connection sends on to the writer (protocol/relay.hpp):
// its envelope is valid and the caller may call the action.
struct relayed_request {
    std::string id;
    std::string_view action;
};

// What parse() makes of a frame.
using parse_result = std::variant<task<outcome>, rejection, relayed_request>;

class request_parser {
public:
    request_parser();
    ~request_parser();
    request_parser(const request_parser&) = delete;
    request_parser& operator=(const request_parser&) = delete;

    // The task that answers the frame, made for `self`; or what to answer;
    // or, for a relayed action when `self` has a relay, that it is relayed
    // (its params are the writer's to read). Without `self` the params are
    // only read (and the task is empty).
    // Reuses one set of buffers: single-threaded; the task owns its data.
    parse_result parse(std::string_view frame, const dispatch_table& actions, std::shared_ptr<session>* self);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace registry::protocol
