// The service record: the protocol's service object (docs/protocol.md, "The
// service object"), which is also the value the registry stores for an
// instance (keyspace::services), so that a stored record and what clients
// see can never drift apart. Written into responses, events and the store;
// read back from the store and, in its registration form, from requests.
#pragma once

#include "json_writer.hpp"

#include <registry/result.hpp>
#include <registry/service.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace simdjson::dom {
class element;
}

namespace registry::detail {

struct decoder;
struct path;

// `with_lease_id`: false for a viewer who does not hold the lease (nor is an
// admin); a lease id of 0 (a copy made for such a viewer) is never written.
void write_service(json_writer& w, const service_instance& s, bool with_lease_id = true);
// At least the size write_service() writes for `s` unless its strings need
// escaping: what to reserve so that the text is not reallocated as it grows.
std::size_t service_json_capacity(const service_instance& s) noexcept;
void write_endpoints(json_writer& w, const std::vector<endpoint>& endpoints);
void write_health(json_writer& w, const std::optional<health_result>& health);  // null when absent

// The complete service object, as stored.
std::string encode_service_record(const service_instance& s);

// Parses what encode_service_record wrote. Fails with invalid_request (and
// the offending field's path) on anything else.
result<service_instance> decode_service_record(std::string_view json);

// A registration gives the descriptive fields (name and the optional ones
// up to metadata); a stored record has them all.
enum class service_form { registration, record };

bool read_service(decoder& d, simdjson::dom::element e, const path& at, service_form form, service_instance& out);

}  // namespace registry::detail
