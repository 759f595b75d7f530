// The event log record: the events of one revision as the registry writes
// them to the store when it keeps an event log (registry_options::event_log,
// keyspace::event_log), so that another process following the store (a
// standby registryd) publishes the same events under the same revision, and
// a registry that opens the store can replay them (resume from a revision).
//
// Each event keeps its own copy of the instance it is about (a later
// revision of the same transaction may change or erase it), its check
// change, deployment and failure; a companion's data (event_detail) is kept
// as the JSON members it writes, and written back verbatim.
#pragma once

#include <registry/event.hpp>
#include <registry/result.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace registry::detail {

std::string encode_event_log(const std::vector<std::shared_ptr<event>>& events);

// The events, with `revision` set on each. Fails with invalid_request and
// the offending field's path on anything encode_event_log did not write.
result<std::vector<std::shared_ptr<event>>> decode_event_log(std::string_view json, std::uint64_t revision);

}  // namespace registry::detail
