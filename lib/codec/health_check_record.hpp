// A registration's health checks in the service object (docs/protocol.md,
// "Health checks"): the definitions a registration gives, and in a stored
// record (and every answer) each one's current result as well.
#pragma once

#include "json_writer.hpp"

#include <registry/health_check.hpp>

#include <vector>

namespace simdjson::dom {
class element;
}

namespace registry::detail {

struct decoder;
struct path;

void write_checks(json_writer& w, const std::vector<health_check>& checks);
// A check's transition, as health_check_result events carry it ("check").
void write_check_change(json_writer& w, const check_change& c);
std::size_t checks_json_capacity(const std::vector<health_check>& checks) noexcept;

// with_results: a stored record (each check has its "result"); otherwise a
// registration's definitions, which may not have one.
bool read_checks(decoder& d, simdjson::dom::element e, const path& at, bool with_results,
                 std::vector<health_check>& out);

}  // namespace registry::detail
