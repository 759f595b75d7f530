#include "access/gate.hpp"

#include "access/credentials.hpp"

namespace registryd::access {

namespace {

// JSON string contents: the messages here are ours, but a role or identity
// name from the tokens file may hold anything.
void append_escaped(std::string& out, std::string_view s) {
    static constexpr char digits[] = "0123456789abcdef";
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20) {
            out += "\\u00";
            out += digits[c >> 4];
            out += digits[c & 15];
        } else {
            out += ch;
        }
    }
}

}  // namespace

std::string refusal::body() const {
    std::string out = R"({"code":")";
    append_escaped(out, code);
    out += R"(","message":")";
    append_escaped(out, message);
    out += '"';
    if (retry_after.count() > 0) out += ",\"retry_after_ms\":" + std::to_string(retry_after.count() * 1000);
    out += "}\n";
    return out;
}

gate::gate(const config& cfg)
    : http_(cfg.http),
      roles_(cfg.auth ? cfg.auth->roles : decltype(cfg.auth->roles){}),
      failures_(cfg.auth ? cfg.auth->max_failed_attempts : 1,
                cfg.auth ? cfg.auth->failed_attempt_window : std::chrono::seconds(1)) {
    if (cfg.auth && !cfg.auth->disabled) {
        tokens_file_ = cfg.auth->tokens_file;
        authenticator_.emplace(load_tokens_file(tokens_file_, roles_));
    }
}

bool gate::reload(std::string& why) {
    if (!authenticator_) return true;  // nothing read at start, nothing to re-read
    try {
        authenticator_->replace(load_tokens_file(tokens_file_, roles_));
        return true;
    } catch (const config_error& e) {
        why = e.what();
        return false;
    }
}

std::variant<gate::caller, refusal> gate::admit(const credentials& c, clock::time_point now) {
    if (!origin_allowed(http_, c.origin, c.host)) {
        return refusal{403, "forbidden",
                       "the origin '" + std::string(*c.origin) + "' may not connect (http.allowed_origins)", {}};
    }
    if (!authenticator_) return registry::protocol::principal::anonymous();
    if (const auto wait = failures_.blocked(c.source, now)) {
        return refusal{429, "rate_limited", "too many failed authentications from this address; retry later", *wait};
    }
    const auto token = presented_token(c.authorization, c.target);
    if (auto who = authenticator_->find(token ? std::optional<std::string_view>(*token) : std::nullopt, c.subject))
        return who;
    failures_.record(c.source, now);
    if (!token && !c.subject) {
        return refusal{401, "unauthenticated",
                       "a token is required: Authorization: Bearer TOKEN or the access_token query parameter", {}};
    }
    return refusal{401, "unauthenticated", "the token is not valid", {}};
}

refusal gate::lacks(const registry::protocol::principal& who, registry::protocol::permission_family family,
                    std::string_view what) {
    return refusal{403, "forbidden",
                   "'" + who.who.name + "' lacks the permission '" + std::string(to_string(family)) + "' that " +
                       std::string(what) + " needs",
                   {}};
}

}  // namespace registryd::access
