#include "notify/webhook_url.hpp"

#include <charconv>

namespace registryd {

std::string webhook_url::host_header() const {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<webhook_url> parse_webhook_url(std::string_view text, std::string& why) {
    webhook_url u;
    if (text.starts_with("http://")) {
        text.remove_prefix(7);
        u.port = 80;
    } else if (text.starts_with("https://")) {
        text.remove_prefix(8);
        u.tls = true;
        u.port = 443;
    } else {
        why = "must start with http:// or https://";
        return std::nullopt;
    }
    for (char c : text) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
            why = "must not contain spaces or control characters";
            return std::nullopt;
        }
    }
    if (text.find('#') != std::string_view::npos) {
        why = "must not have a fragment (#)";
        return std::nullopt;
    }
    const auto path_at = text.find_first_of("/?");
    std::string_view authority = text.substr(0, path_at);
    u.target = path_at == std::string_view::npos ? "/" : std::string(text.substr(path_at));
    if (u.target.front() == '?') u.target.insert(0, "/");
    if (authority.find('@') != std::string_view::npos) {
        why = "must not hold user info (user@): put credentials in the secret";
        return std::nullopt;
    }
    std::string_view port;
    if (authority.starts_with("[")) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            why = "has an unclosed [ in its host";
            return std::nullopt;
        }
        u.host = std::string(authority.substr(1, close - 1));
        std::string_view rest = authority.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                why = "has something other than :PORT after its [host]";
                return std::nullopt;
            }
            port = rest.substr(1);
            if (port.empty()) port = "-";
        }
    } else {
        const auto colon = authority.rfind(':');
        u.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port = authority.substr(colon + 1);
            if (port.empty()) port = "-";
        }
    }
    if (u.host.empty()) {
        why = "has no host";
        return std::nullopt;
    }
    if (!port.empty()) {
        unsigned p = 0;
        auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
        if (ec != std::errc{} || end != port.data() + port.size() || p == 0 || p > 65535) {
            why = "has a port that is not 1-65535";
            return std::nullopt;
        }
        u.port = static_cast<std::uint16_t>(p);
    }
    return u;
}

}  // namespace registryd
