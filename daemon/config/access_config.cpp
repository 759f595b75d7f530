#include "config/access_config.hpp"

#include "config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>

#include <charconv>
#include <functional>

namespace registryd {

namespace {

class section_reader {
public:
    explicit section_reader(std::string_view origin) : origin_(origin) {}

    [[noreturn]] void fail(const YAML::Node& n, const std::string& path, const std::string& what) const {
        std::string s(origin_);
        if (!n.Mark().is_null()) s += ":" + std::to_string(n.Mark().line + 1);
        throw config_error(s + ": " + path + ": " + what);
    }

    void mapping(const YAML::Node& v, const std::string& path,
                 const std::function<bool(const std::string&, const YAML::Node&, const std::string&)>& h) const {
        if (v.IsNull()) return;
        if (!v.IsMap()) fail(v, path, "must be a mapping");
        for (const auto& kv : v) {
            if (!kv.first.IsScalar()) fail(kv.first, path, "keys must be strings");
            const std::string k = kv.first.Scalar();
            const std::string p = path + "." + k;
            if (!h(k, kv.second, p)) fail(kv.first, p, "unknown key");
        }
    }

    std::string text(const YAML::Node& v, const std::string& path) const {
        if (!v.IsScalar()) fail(v, path, "must be a string");
        if (v.Scalar().empty()) fail(v, path, "must not be empty");
        return v.Scalar();
    }

    std::vector<std::string> texts(const YAML::Node& v, const std::string& path) const {
        if (!v.IsSequence()) fail(v, path, "must be a list of strings");
        std::vector<std::string> out;
        for (std::size_t i = 0; i < v.size(); ++i) out.push_back(text(v[i], path + "[" + std::to_string(i) + "]"));
        return out;
    }

    std::uint64_t number(const YAML::Node& v, const std::string& path, std::uint64_t min, std::uint64_t max) const {
        const std::string s = text(v, path);
        std::uint64_t n = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (ec != std::errc{} || end != s.data() + s.size()) fail(v, path, "must be a non-negative integer");
        if (n < min || n > max) fail(v, path, "must be " + std::to_string(min) + "-" + std::to_string(max));
        return n;
    }

    bool boolean(const YAML::Node& v, const std::string& path) const {
        const std::string s = text(v, path);
        if (s == "true") return true;
        if (s == "false") return false;
        fail(v, path, "must be true or false");
    }

private:
    std::string_view origin_;
};

}  // namespace

void read_auth_section(auth_config& A, const YAML::Node& v, std::string_view origin) {
    const section_reader r(origin);
    r.mapping(v, "auth", [&](const std::string& k, const YAML::Node& n, const std::string& p) {
        if (k == "disabled") {
            A.disabled = r.boolean(n, p);
        } else if (k == "tokens_file") {
            A.tokens_file = r.text(n, p);
        } else if (k == "roles") {
            r.mapping(n, p, [&](const std::string& name, const YAML::Node& families, const std::string& rp) {
                A.roles[name] = r.texts(families, rp);
                return true;
            });
        } else if (k == "max_failed_attempts") {
            A.max_failed_attempts = r.number(n, p, 1, 1000000);
        } else if (k == "failed_attempt_window_seconds") {
            A.failed_attempt_window = std::chrono::seconds(r.number(n, p, 1, 86400));
        } else {
            return false;
        }
        return true;
    });
}

void read_http_section(http_config& H, const YAML::Node& v, std::string_view origin) {
    const section_reader r(origin);
    r.mapping(v, "http", [&](const std::string& k, const YAML::Node& n, const std::string& p) {
        if (k == "allowed_origins") {
            H.allowed_origins = r.texts(n, p);
        } else if (k == "metrics_token_required") {
            H.metrics_token_required = r.boolean(n, p);
        } else {
            return false;
        }
        return true;
    });
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
