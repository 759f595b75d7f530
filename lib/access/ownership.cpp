#include <registry/ownership.hpp>

#include <string>

namespace registry {

std::optional<error> check_owner(const identity& by, std::string_view owner, std::string_view action,
                                 std::string_view kind, std::string_view name) {
    if (by.may_act_for(owner)) return std::nullopt;
    return error{errc::forbidden, "'" + by.name + "' may not " + std::string(action) + " " + std::string(kind) +
                                      " '" + std::string(name) + "': it belongs to another identity"};
}

std::optional<error> check_service_scope(const identity& by, std::string_view service, std::string_view action) {
    if (by.may_name_service(service)) return std::nullopt;
    return error{errc::forbidden, "'" + by.name + "' may not " + std::string(action) + " service '" +
                                      std::string(service) + "': it is outside the services of '" + by.name + "'"};
}

}  // namespace registry
