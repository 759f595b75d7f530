#include "access/credentials.hpp"

#include "http/url_encoding.hpp"

#include <algorithm>
#include <cctype>

namespace registryd::access {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

std::optional<std::string> presented_token(std::string_view authorization, std::string_view target) {
    authorization = trim(authorization);
    if (authorization.size() > 7 && iequals(authorization.substr(0, 7), "bearer ")) {
        const std::string_view token = trim(authorization.substr(7));
        if (!token.empty()) return std::string(token);
    }
    const auto q = target.find('?');
    if (q == std::string_view::npos) return std::nullopt;
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        constexpr std::string_view key = "access_token=";
        if (pair.substr(0, key.size()) == key) {
            auto value = url_decode(pair.substr(key.size()));
            if (value && !value->empty()) return value;
        }
    }
    return std::nullopt;
}

bool origin_allowed(const http_config& http, std::optional<std::string_view> origin, std::string_view host) {
    if (!origin) return true;
    if (http.allowed_origins.empty()) {
        return !host.empty() && (iequals(*origin, "http://" + std::string(host)) ||
                                 iequals(*origin, "https://" + std::string(host)));
    }
    return std::any_of(http.allowed_origins.begin(), http.allowed_origins.end(),
                       [&](const std::string& allowed) { return allowed == "*" || iequals(allowed, *origin); });
}

}  // namespace registryd::access
