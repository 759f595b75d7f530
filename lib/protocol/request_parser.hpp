// Turns a request frame into a request or a rejection, checking it strictly
// against docs/protocol.md: unknown or duplicate fields, missing fields, wrong
// types and syntactic ranges are rejected with the offending field's path.
// The domain rules (name charset, lengths, TTL bounds) are the registry's.
#pragma once

#include "request.hpp"

#include <memory>
#include <string_view>

namespace simdjson::dom {
class element;
}

namespace registry::protocol {

class request_parser {
public:
    request_parser();
    ~request_parser();
    request_parser(const request_parser&) = delete;
    request_parser& operator=(const request_parser&) = delete;

    // Reuses one set of buffers: single-threaded, and the result owns its data.
    parsed_frame parse(std::string_view frame);

private:
    parsed_frame parse_with_big_integer(std::string_view frame);
    parsed_frame read_frame(const simdjson::dom::element& root);

    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace registry::protocol
