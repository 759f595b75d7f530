// What an action needs to be allowed, by family, and what a client holds.
// Every action of the dispatch table declares one family; the session
// checks the caller's permission set where the table dispatches, and answers
// `forbidden` naming the family it lacks.
#pragma once

#include <registry/identity.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

namespace registry::protocol {

enum class permission_family : std::uint8_t {
    discover,         // read the registry and follow it: get_service, list_services, list_endpoints,
                      // subscribe, unsubscribe
    register_,        // change service instances: register, keepalive, deregister, set_state, report_health
    containers_read,  // container_list, container_get, container_logs, list_nodes
    containers_write, // container_create, container_stop, container_remove, container_extend, image_pull
    repl_read,        // repl_languages, repl_result, repl_history
    repl,             // repl_execute, repl_cancel
    deploy,           // deploy_package, service_action, undeploy, package_upload_begin/_chunk/_status
};
inline constexpr std::size_t permission_family_count = 7;

// The family's name in roles, the config and `forbidden` messages.
constexpr std::string_view to_string(permission_family f) noexcept {
    switch (f) {
        case permission_family::discover: return "discover";
        case permission_family::register_: return "register";
        case permission_family::containers_read: return "containers.read";
        case permission_family::containers_write: return "containers.write";
        case permission_family::repl_read: return "repl.read";
        case permission_family::repl: return "repl";
        case permission_family::deploy: return "deploy";
    }
    return "unknown";
}

std::optional<permission_family> permission_family_from(std::string_view name) noexcept;

class permission_set {
public:
    constexpr permission_set() = default;
    constexpr permission_set(std::initializer_list<permission_family> fs) {
        for (auto f : fs) add(f);
    }
    static constexpr permission_set all() {
        permission_set s;
        s.bits_ = (1u << permission_family_count) - 1;
        return s;
    }
    constexpr void add(permission_family f) { bits_ |= 1u << static_cast<unsigned>(f); }
    constexpr bool allows(permission_family f) const { return (bits_ >> static_cast<unsigned>(f)) & 1u; }
    constexpr bool operator==(const permission_set&) const = default;

private:
    std::uint32_t bits_ = 0;
};

// A connection's caller: who it is (ownership, service scopes) and what it
// may do. Fixed for the connection's life; the embedder builds it when the
// client authenticates (registryd: at the WebSocket upgrade).
struct principal {
    ::registry::identity who;
    permission_set permissions;

    // Access control off: "anonymous", an admin holding every permission.
    static std::shared_ptr<const principal> anonymous();
};

}  // namespace registry::protocol
