#include "access/role_table.hpp"

#include "config/config.hpp"

#include <array>

namespace registryd::access {

namespace {

using registry::protocol::permission_family;
using registry::protocol::permission_set;

constexpr permission_set reader_families{permission_family::discover, permission_family::containers_read,
                                         permission_family::repl_read};

permission_set with(permission_set s, permission_family f) {
    s.add(f);
    return s;
}

const std::array<role, 6>& table() {
    static const std::array<role, 6> roles = [] {
        const permission_set registrar = with(reader_families, permission_family::register_);
        const permission_set runner = with(registrar, permission_family::repl);
        const permission_set op = with(runner, permission_family::containers_write);
        const permission_set deployer = with(op, permission_family::deploy);
        return std::array<role, 6>{{
            {"reader", reader_families, false,
             "discovery, subscriptions, container listings and logs, REPL languages"},
            {"registrar", registrar, false, "reader + register, keepalive, deregister, set_state"},
            {"runner", runner, false, "registrar + REPL executions"},
            {"operator", op, false, "runner + containers (create, stop, remove, extend, image pull)"},
            {"deployer", deployer, false, "operator + uploads, deploys, undeploys, service actions"},
            {"admin", permission_set::all(), true, "everything, and acts on what any identity owns"},
        }};
    }();
    return roles;
}

}  // namespace

std::span<const role> builtin_roles() { return table(); }

role_table::role_table(const std::map<std::string, std::vector<std::string>, std::less<>>& custom) {
    roles_.assign(table().begin(), table().end());
    for (const auto& [name, families] : custom) {
        const std::string at = "auth.roles." + name + ": ";
        if (find(name)) throw config_error(at + "a built-in role has this name");
        role r{name, {}, false, {}};
        for (const auto& f : families) {
            const auto family = registry::protocol::permission_family_from(f);
            if (!family) {
                std::string known;
                for (std::size_t i = 0; i < registry::protocol::permission_family_count; ++i) {
                    if (i) known += ", ";
                    known += to_string(static_cast<permission_family>(i));
                }
                throw config_error(at + "unknown permission family '" + f + "' (families: " + known + ")");
            }
            r.permissions.add(*family);
        }
        roles_.push_back(std::move(r));
    }
}

const role* role_table::find(std::string_view name) const {
    for (const auto& r : roles_)
        if (r.name == name) return &r;
    return nullptr;
}

std::string role_table::names() const {
    std::string out;
    for (const auto& r : roles_) {
        if (!out.empty()) out += ", ";
        out += r.name;
    }
    return out;
}

std::string role_table::markdown() const {
    std::string out = "| role |";
    std::string rule = "|---|";
    for (std::size_t i = 0; i < registry::protocol::permission_family_count; ++i) {
        out += " `";
        out += to_string(static_cast<permission_family>(i));
        out += "` |";
        rule += ":-:|";
    }
    out += " admin | what it is for |\n" + rule + ":-:|---|\n";
    for (const auto& r : roles_) {
        out += "| `" + r.name + "` |";
        for (std::size_t i = 0; i < registry::protocol::permission_family_count; ++i)
            out += r.permissions.allows(static_cast<permission_family>(i)) ? " ✓ |" : "   |";
        out += r.admin ? " ✓ | " : "   | ";
        out += r.summary.empty() ? std::string_view("custom (auth.roles)") : r.summary;
        out += " |\n";
    }
    return out;
}

}  // namespace registryd::access
