// Who may come in: the daemon's access control at the door, before a
// request reaches the protocol. For a WebSocket upgrade and the HTTP
// endpoints alike it checks, in order, the Origin (403), the failed
// attempts of the source address (429) and the token or certificate
// subject (401), and answers the caller's principal. Off (no `auth`
// section, or auth.disabled), every caller is anonymous: an admin with
// every permission. Lives on the io thread.
#pragma once

#include "access/authenticator.hpp"
#include "access/failed_attempts.hpp"
#include "access/role_table.hpp"
#include "config/config.hpp"

#include <registry/protocol/permission.hpp>

#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace registryd::access {

// An HTTP refusal: 401 unauthenticated (with WWW-Authenticate: Bearer),
// 403 forbidden, 429 rate_limited (with Retry-After).
struct refusal {
    unsigned status = 401;
    std::string_view code;
    std::string message;
    std::chrono::seconds retry_after{0};

    std::string body() const;  // {"code":...,"message":...[,"retry_after_ms":...]}
};

// What the gate looks at in a request (free of Beast).
struct credentials {
    boost::asio::ip::address source;
    std::optional<std::string_view> origin;  // the Origin header
    std::string_view host;                   // the Host header
    std::string_view authorization;          // the Authorization header ("" when absent)
    std::string_view target;                 // path and query (access_token)
    std::optional<std::string_view> subject; // a verified client certificate's subject (mutual TLS)
};

class gate {
public:
    using caller = std::shared_ptr<const registry::protocol::principal>;
    using clock = failed_attempts::clock;

    // Reads the roles and the tokens file. Throws config_error.
    explicit gate(const config& cfg);

    bool enabled() const noexcept { return authenticator_.has_value(); }
    const role_table& roles() const noexcept { return roles_; }

    // Re-reads the tokens file (SIGHUP); an invalid one leaves the loaded
    // tokens in place and says why.
    bool reload(std::string& why);

    // The caller, or why it may not come in.
    std::variant<caller, refusal> admit(const credentials& c, clock::time_point now);

    // `family` is not among the caller's permissions: 403.
    static refusal lacks(const registry::protocol::principal& who, registry::protocol::permission_family family,
                         std::string_view what);

private:
    http_config http_;
    role_table roles_;
    std::filesystem::path tokens_file_;
    std::optional<authenticator> authenticator_;
    failed_attempts failures_;
};

}  // namespace registryd::access
