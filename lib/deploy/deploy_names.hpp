// The names of the deployer's enumerations on the wire, one table each
// (codec/enum_names.hpp): deployment stages, service actions.
#pragma once

#include "codec/enum_names.hpp"

#include <registry/deploy/deployer.hpp>

namespace registry::detail {

template <>
struct enum_names<deploy::stage> {
    static constexpr std::string_view names[] = {"uploading", "validating",  "checking_requirements",
                                                 "installing", "starting",   "health_gating",
                                                 "done",       "rolled_back", "failed"};
};

template <>
struct enum_names<deploy::service_command> {
    static constexpr std::string_view names[] = {"start", "stop", "restart"};
};

}  // namespace registry::detail
