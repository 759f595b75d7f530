// engine_endpoint, apart from the HTTP client (engine_http.cpp includes
// Beast): the configuration reads it, and its fuzz target links no Asio.
#include "engine/engine_http.hpp"

#include <sys/un.h>

#include <charconv>

namespace registryd {

using registry::errc;
using registry::fail;

namespace {

std::optional<std::uint16_t> parse_port(std::string_view s) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(v);
}

}  // namespace

registry::result<engine_endpoint> engine_endpoint::parse(std::string_view uri) {
    auto bad = [&](std::string_view why) {
        return fail(errc::invalid_request, "bad container engine address '" + std::string(uri) + "': " + std::string(why));
    };
    engine_endpoint ep;
    if (uri.starts_with("unix://") || uri.starts_with("/")) {
        ep.type = kind::unix_socket;
        ep.path = std::string(uri.starts_with("unix://") ? uri.substr(7) : uri);
        if (ep.path.empty() || ep.path.front() != '/') return bad("a unix socket needs an absolute path");
        if (ep.path.size() >= sizeof(sockaddr_un{}.sun_path)) return bad("the socket path is too long");
        return ep;
    }
    std::string_view rest;
    if (uri.starts_with("tcp://")) {
        rest = uri.substr(6);
    } else if (uri.starts_with("http://")) {
        rest = uri.substr(7);
    } else {
        return bad("expected unix:///path or tcp://host:port");
    }
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    std::string_view host;
    std::string_view port;
    if (rest.starts_with("[")) {
        const auto close = rest.find(']');
        if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
            return bad("expected tcp://[v6-address]:port");
        }
        host = rest.substr(1, close - 1);
        port = rest.substr(close + 2);
    } else {
        const auto colon = rest.rfind(':');
        if (colon == std::string_view::npos) return bad("missing port");
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    const auto p = parse_port(port);
    if (host.empty() || !p) return bad("expected tcp://host:port");
    ep.type = kind::tcp;
    ep.host = std::string(host);
    ep.port = *p;
    return ep;
}

std::string engine_endpoint::uri() const {
    if (type == kind::unix_socket) return "unix://" + path;
    const bool v6 = host.find(':') != std::string::npos;
    return "tcp://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace registryd
