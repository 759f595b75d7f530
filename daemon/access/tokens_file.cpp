#include "access/tokens_file.hpp"

#include "config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <openssl/sha.h>

#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace registryd::access {

namespace {

[[noreturn]] void fail(std::string message) { throw config_error(std::move(message)); }

std::optional<digest> parse_hex_digest(std::string_view s) {
    if (s.size() != 64) return std::nullopt;
    digest d{};
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < d.size(); ++i) {
        const int hi = nibble(s[2 * i]);
        const int lo = nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        d[i] = static_cast<unsigned char>(hi << 4 | lo);
    }
    return d;
}

std::string text(const YAML::Node& n, const std::string& at) {
    if (!n.IsScalar() || n.Scalar().empty()) fail(at + ": must be a non-empty string");
    return n.Scalar();
}

}  // namespace

digest sha256_of(std::string_view bytes) {
    digest d{};
    ::SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d.data());
    return d;
}

std::string hex(const digest& d) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char b : d) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

std::vector<token_entry> parse_tokens(std::string_view yaml, std::string_view origin, const role_table& roles) {
    const std::string file(origin);
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
        fail(file + ": invalid YAML: " + e.msg);
    }
    if (!root.IsMap()) fail(file + ": must be a mapping with a `tokens` list");
    std::vector<token_entry> out;
    for (const auto& kv : root) {
        if (!kv.first.IsScalar() || kv.first.Scalar() != "tokens")
            fail(file + ": " + (kv.first.IsScalar() ? kv.first.Scalar() : std::string("(key)")) + ": unknown key");
        const YAML::Node& list = kv.second;
        if (list.IsNull()) continue;
        if (!list.IsSequence()) fail(file + ": tokens: must be a list");
        for (std::size_t i = 0; i < list.size(); ++i) {
            const std::string at = file + ": tokens[" + std::to_string(i) + "]";
            const YAML::Node& item = list[i];
            if (!item.IsMap()) fail(at + ": must be a mapping");
            ::registry::identity who;
            registry::protocol::permission_set permissions;
            token_entry e;
            bool has_role = false;
            for (const auto& f : item) {
                const std::string k = f.first.IsScalar() ? f.first.Scalar() : std::string("(key)");
                const std::string p = at + "." + k;
                if (k == "name") {
                    who.name = text(f.second, p);
                } else if (k == "sha256") {
                    e.sha256 = parse_hex_digest(text(f.second, p));
                    if (!e.sha256) fail(p + ": must be 64 hexadecimal digits (the token's SHA-256)");
                } else if (k == "subject") {
                    e.subject = text(f.second, p);
                } else if (k == "role") {
                    const std::string name = text(f.second, p);
                    const role* r = roles.find(name);
                    if (!r) fail(p + ": unknown role '" + name + "' (roles: " + roles.names() + ")");
                    permissions = r->permissions;
                    who.admin = r->admin;
                    has_role = true;
                } else if (k == "services") {
                    if (!f.second.IsSequence()) fail(p + ": must be a list of service-name patterns");
                    for (std::size_t j = 0; j < f.second.size(); ++j)
                        who.services.push_back(text(f.second[j], p + "[" + std::to_string(j) + "]"));
                } else {
                    fail(p + ": unknown key");
                }
            }
            if (who.name.empty()) fail(at + ".name: is required");
            if (!has_role) fail(at + ".role: is required");
            if (!e.sha256 && !e.subject) fail(at + ": needs sha256 (a token's digest) or subject (a client certificate's)");
            for (const auto& other : out) {
                if (e.sha256 && other.sha256 == e.sha256) fail(at + ".sha256: the same digest is listed twice");
                if (e.subject && other.subject == e.subject) fail(at + ".subject: the same subject is listed twice");
            }
            e.caller = std::make_shared<const registry::protocol::principal>(
                registry::protocol::principal{std::move(who), permissions});
            out.push_back(std::move(e));
        }
    }
    return out;
}

std::vector<token_entry> load_tokens_file(const std::filesystem::path& file, const role_table& roles) {
    struct ::stat st {};
    if (::stat(file.c_str(), &st) != 0) fail("auth.tokens_file: cannot read " + file.string());
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        fail("auth.tokens_file: " + file.string() +
             " may be written by group or others, who could grant themselves any role (chmod go-w it)");
    std::ifstream in(file, std::ios::binary);
    if (!in) fail("auth.tokens_file: cannot read " + file.string());
    std::ostringstream body;
    body << in.rdbuf();
    if (in.bad()) fail("auth.tokens_file: cannot read " + file.string());
    return parse_tokens(body.str(), file.string(), roles);
}

}  // namespace registryd::access
