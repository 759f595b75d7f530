#include "cluster/member_url.hpp"

#include "websocket/client_upgrade.hpp"

#include <charconv>
#include <string>

namespace registryd {

registry::result<member_endpoint> member_endpoint_of(std::string_view url) {
    std::string why;
    const auto parsed = websocket::parse_ws_url(std::string(url), why);
    if (!parsed) return registry::fail(registry::errc::invalid_request, "URL " + std::string(url) + " " + why);
    member_endpoint out;
    out.where.type = engine_endpoint::kind::tcp;
    out.where.host = parsed->host;
    unsigned port = 0;
    const char* first = parsed->port.data();
    const char* last = first + parsed->port.size();
    const auto [end, ec] = std::from_chars(first, last, port);
    if (ec != std::errc{} || end != last || port == 0 || port > 65535) {
        return registry::fail(registry::errc::invalid_request, "URL " + std::string(url) + " has a bad port");
    }
    out.where.port = static_cast<std::uint16_t>(port);
    out.tls = parsed->tls;
    return out;
}

}  // namespace registryd
