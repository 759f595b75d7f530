#include <registry/protocol/permission.hpp>

namespace registry::protocol {

std::optional<permission_family> permission_family_from(std::string_view name) noexcept {
    for (std::size_t i = 0; i < permission_family_count; ++i) {
        auto f = static_cast<permission_family>(i);
        if (to_string(f) == name) return f;
    }
    return std::nullopt;
}

std::shared_ptr<const principal> principal::anonymous() {
    static const auto a = std::make_shared<const principal>(principal{identity::anonymous(), permission_set::all()});
    return a;
}

}  // namespace registry::protocol
