#include "websocket/client_upgrade.hpp"

#include "websocket/accept_key.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstdlib>

namespace registryd::websocket {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
    return s;
}

}  // namespace

std::optional<ws_url> parse_ws_url(std::string_view text, std::string& why) {
    ws_url out;
    std::string_view rest;
    if (text.starts_with("ws://")) {
        rest = text.substr(5);
    } else if (text.starts_with("wss://")) {
        out.tls = true;
        rest = text.substr(6);
    } else {
        why = "must start with ws:// or wss://";
        return std::nullopt;
    }
    const std::size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (authority.starts_with("[")) {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) {
            why = "has an unclosed [ in its host";
            return std::nullopt;
        }
        out.host = std::string(authority.substr(1, close - 1));
        authority.remove_prefix(close + 1);
        if (authority.starts_with(":")) out.port = std::string(authority.substr(1));
    } else {
        const std::size_t colon = authority.rfind(':');
        out.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) out.port = std::string(authority.substr(colon + 1));
    }
    if (out.host.empty()) {
        why = "has no host";
        return std::nullopt;
    }
    if (out.port.empty()) out.port = out.tls ? "443" : "80";
    return out;
}

std::string new_upgrade_key() {
    std::array<unsigned char, 16> raw{};
    // OpenSSL's generator is seeded from the kernel's; a predictable key is
    // still a valid one (it guards against proxies' caches, not attackers).
    (void)RAND_bytes(raw.data(), static_cast<int>(raw.size()));
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < raw.size(); i += 3) {
        const std::uint32_t n = (std::uint32_t{raw[i]} << 16) | (i + 1 < raw.size() ? std::uint32_t{raw[i + 1]} << 8 : 0) |
                                (i + 2 < raw.size() ? std::uint32_t{raw[i + 2]} : 0);
        out += alphabet[(n >> 18) & 63];
        out += alphabet[(n >> 12) & 63];
        out += i + 1 < raw.size() ? alphabet[(n >> 6) & 63] : '=';
        out += i + 2 < raw.size() ? alphabet[n & 63] : '=';
    }
    return out;
}

std::string upgrade_request(const ws_url& where, std::string_view key, std::string_view bearer_token) {
    std::string req = "GET " + where.target + " HTTP/1.1\r\nHost: " +
                      (where.host.find(':') != std::string::npos ? "[" + where.host + "]" : where.host) + ":" +
                      where.port + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
                      std::string(key) + "\r\nSec-WebSocket-Version: 13\r\n";
    if (!bearer_token.empty()) req += "Authorization: Bearer " + std::string(bearer_token) + "\r\n";
    return req + "\r\n";
}

upgrade_response read_upgrade_response(std::string_view head, std::string_view key) {
    upgrade_response r;
    const std::size_t line_end = head.find("\r\n");
    const std::string_view status_line = trim(head.substr(0, line_end));
    r.status_line = std::string(status_line);
    if (status_line.starts_with("HTTP/1.")) {
        const std::size_t sp = status_line.find(' ');
        if (sp != std::string_view::npos) r.status = std::atoi(std::string(status_line.substr(sp + 1, 3)).c_str());
    }
    std::string accept;
    for (std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2; pos < head.size();) {
        const std::size_t end = head.find("\r\n", pos);
        const std::string_view line = head.substr(pos, end - pos);
        pos = end == std::string_view::npos ? head.size() : end + 2;
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        const std::string name = lower(trim(line.substr(0, colon)));
        const std::string_view value = trim(line.substr(colon + 1));
        if (name == "sec-websocket-accept") accept = std::string(value);
        if (name == "content-length") r.content_length = std::strtoull(std::string(value).c_str(), nullptr, 10);
    }
    r.accepted = !accept.empty() && accept == accept_key(key);
    return r;
}

}  // namespace registryd::websocket
