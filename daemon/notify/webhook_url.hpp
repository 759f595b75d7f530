// A webhook's URL (config `notifications`): http:// or https://, a host
// (a name, an IPv4 address or a bracketed IPv6 one), an optional port and a
// path with its query. No user info, no fragment: what a POST needs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace registryd {

struct webhook_url {
    bool tls = false;
    std::string host;    // without brackets
    std::uint16_t port = 0;
    std::string target;  // "/path?query"; "/" when the URL has no path
    std::string host_header() const;  // "host:port" ([v6]:port)
};

// nullopt with `why` set if `text` is not such a URL.
std::optional<webhook_url> parse_webhook_url(std::string_view text, std::string& why);

}  // namespace registryd
