// The container record: the protocol's container object (docs/protocol.md,
// "Containers"), which is also the value the container manager stores for a
// lease (keyspace::containers), one format like service records.
#pragma once

#include "enum_names.hpp"
#include "json_writer.hpp"

#include <registry/container.hpp>
#include <registry/managed_container.hpp>
#include <registry/result.hpp>

#include <string>
#include <string_view>

namespace registry::detail {

template <>
struct enum_names<managed_state> {
    static constexpr std::string_view names[] = {"created", "running", "exited", "removed", "lost"};
};

template <>
struct enum_names<container_network> {
    static constexpr std::string_view names[] = {"none", "default"};
};

// How much of a container: `summary` in listings and events, `full` (adds
// command, limits, labels) in container_get and the stored record.
enum class container_view { summary, full };

void write_container(json_writer& w, const managed_container& c, container_view view = container_view::summary);

// The full container object, as stored.
std::string encode_container_record(const managed_container& c);

// Parses what encode_container_record wrote. invalid_request with the
// field's path otherwise.
result<managed_container> decode_container_record(std::string_view json);

}  // namespace registry::detail
