// Roles: named sets of permission families (registry/protocol/permission.hpp).
// The built-in ones are this one table in code, which `registryd roles
// --markdown` renders and docs/protocol.md carries (a test checks that the
// two agree); `auth.roles` in the config adds custom ones.
#pragma once

#include <registry/protocol/permission.hpp>

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace registryd::access {

struct role {
    std::string name;
    registry::protocol::permission_set permissions;
    bool admin = false;  // acts on what any identity owns (identity::admin)
    std::string_view summary;  // for the docs; empty for custom roles
};

// reader, registrar, runner, operator, deployer, admin: each holds the one
// before it and more.
std::span<const role> builtin_roles();

class role_table {
public:
    // The built-in roles plus `custom` (name → family names). Throws
    // config_error naming auth.roles.NAME for an unknown family or a custom
    // role that reuses a built-in name.
    explicit role_table(const std::map<std::string, std::vector<std::string>, std::less<>>& custom = {});

    const role* find(std::string_view name) const;
    const std::vector<role>& roles() const noexcept { return roles_; }
    std::string names() const;  // "reader, registrar, ..." for messages

    // The table as Markdown: one row per role, one column per family.
    std::string markdown() const;

private:
    std::vector<role> roles_;
};

}  // namespace registryd::access
