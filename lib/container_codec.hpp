// The stored form of a container lease: the protocol's container object
// (one format, like service records).
#pragma once

#include <registry/managed_container.hpp>
#include <registry/result.hpp>

#include <string>
#include <string_view>

namespace registry::detail {

std::string encode_container_record(const managed_container& c);

// Parses what encode_container_record wrote (protocol/request_parser.cpp,
// where simdjson lives). invalid_request with the field's path otherwise.
result<managed_container> decode_container_record(std::string_view json);

}  // namespace registry::detail
