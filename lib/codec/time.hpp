// Times on the wire and in the store: milliseconds since the Unix epoch.
#pragma once

#include <registry/ports/clock.hpp>

#include <cstdint>

namespace registry::detail {

constexpr std::int64_t ms(time_point t) noexcept { return t.time_since_epoch().count(); }

}  // namespace registry::detail
