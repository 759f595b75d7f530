#include "config/access_config.hpp"

#include "config/config.hpp"
#include "config/yaml_section_reader.hpp"

#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>

#include <charconv>
#include <functional>

namespace registryd {

void read_auth_section(auth_config& A, const YAML::Node& v, std::string_view origin) {
    const yaml_section_reader r(origin);
    r.mapping(v, "auth", [&](const std::string& k, const YAML::Node& n, const std::string& p) {
        if (k == "disabled") {
            A.disabled = r.boolean(n, p);
        } else if (k == "tokens_file") {
            A.tokens_file = r.text(n, p);
        } else if (k == "roles") {
            r.mapping(n, p, [&](const std::string& name, const YAML::Node& families, const std::string& rp) {
                A.roles[name] = r.texts(families, rp);
                return true;
            }, true);
        } else if (k == "max_failed_attempts") {
            A.max_failed_attempts = r.number(n, p, 1, 1000000);
        } else if (k == "failed_attempt_window_seconds") {
            A.failed_attempt_window = std::chrono::seconds(r.number(n, p, 1, 86400));
        } else {
            return false;
        }
        return true;
    }, true);
}

void read_http_section(http_config& H, const YAML::Node& v, std::string_view origin) {
    const yaml_section_reader r(origin);
    r.mapping(v, "http", [&](const std::string& k, const YAML::Node& n, const std::string& p) {
        if (k == "allowed_origins") {
            H.allowed_origins = r.texts(n, p);
        } else if (k == "metrics_token_required") {
            H.metrics_token_required = r.boolean(n, p);
        } else {
            return false;
        }
        return true;
    }, true);
}

bool transport_encrypted(const config& cfg) { return cfg.tls.has_value(); }

bool is_loopback_host(std::string_view host) {
    if (host == "localhost") return true;
    const std::string h(host);
    in_addr v4{};
    if (::inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    in6_addr v6{};
    return ::inet_pton(AF_INET6, h.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace registryd
