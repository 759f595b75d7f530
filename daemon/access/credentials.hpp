// What a request presents: `Authorization: Bearer TOKEN`, or else the
// `access_token` query parameter (browsers cannot set headers on a
// WebSocket upgrade), and whether its Origin may connect.
#pragma once

#include "config/access_config.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace registryd::access {

// `authorization`: the header's value (empty when absent); `target`: path and query.
std::optional<std::string> presented_token(std::string_view authorization, std::string_view target);

// `origin` absent: not a browser, allowed. Otherwise it must be listed in
// http.allowed_origins ("*": any) or, when that is empty, be registryd's
// own origin: http:// or https:// followed by the Host it was addressed as.
bool origin_allowed(const http_config& http, std::optional<std::string_view> origin, std::string_view host);

}  // namespace registryd::access
