// The service object of docs/protocol.md, written into a larger document
// (responses, events, stored records). Reading it back is request_parser's.
#pragma once

#include "json_writer.hpp"

#include <registry/service.hpp>

#include <cstddef>
#include <optional>
#include <vector>

namespace registry::protocol {

void write_service(detail::json_writer& w, const service_instance& s);
// At least the size write_service() writes for `s` unless its strings need
// escaping: what to reserve so that the text is not reallocated as it grows.
std::size_t service_json_capacity(const service_instance& s) noexcept;
void write_endpoints(detail::json_writer& w, const std::vector<endpoint>& endpoints);
void write_health(detail::json_writer& w, const std::optional<health_result>& health);  // null when absent

}  // namespace registry::protocol
