// The public to_string and parse functions of the enumerations, all from the
// tables of enum_names.hpp.
#include "enum_names.hpp"

namespace registry {

using detail::enum_of;
using detail::name_of;

std::string_view to_string(service_state s) noexcept { return name_of(s); }
std::optional<service_state> parse_service_state(std::string_view s) noexcept { return enum_of<service_state>(s); }

std::string_view to_string(execution_kind k) noexcept { return name_of(k); }
std::optional<execution_kind> parse_execution_kind(std::string_view s) noexcept { return enum_of<execution_kind>(s); }

std::string_view to_string(health_status h) noexcept { return name_of(h); }
std::optional<health_status> parse_health_status(std::string_view s) noexcept { return enum_of<health_status>(s); }

std::string_view to_string(check_kind k) noexcept { return name_of(k); }
std::optional<check_kind> parse_check_kind(std::string_view s) noexcept { return enum_of<check_kind>(s); }
std::string_view to_string(health_filter f) noexcept { return name_of(f); }

std::string_view to_string(event_type t) noexcept { return name_of(t); }
std::optional<event_type> parse_event_type(std::string_view s) noexcept { return enum_of<event_type>(s); }


}  // namespace registry
