// JSON form of a service instance: the protocol's service object, which is
// also the value the registry persists for it (one format, so a stored record
// and what clients see can never drift apart).
#pragma once

#include <registry/result.hpp>
#include <registry/service.hpp>

#include <string>
#include <string_view>

namespace registry::detail {

// The complete service object (docs/protocol.md, "The service object").
std::string encode_service_record(const service_instance& s);

// Parses what encode_service_record wrote. Fails with invalid_request (and
// the offending field's path) on anything else.
result<service_instance> decode_service_record(std::string_view json);

}  // namespace registry::detail
