#include "access/commands.hpp"

#include "access/role_table.hpp"
#include "access/tokens_file.hpp"
#include "config/config.hpp"

#include <openssl/rand.h>

#include <sys/stat.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace registryd::access {

namespace {

constexpr int usage_error = 2;

const char* const token_usage =
    "Usage: registryd token new --name NAME --role ROLE [--services PATTERN...]\n"
    "                           [--tokens-file FILE] [--config FILE]\n"
    "\n"
    "Prints a fresh random token (256 bits, URL-safe base64) once, on stdout, and the\n"
    "tokens-file entry that admits it (its SHA-256, never the token). With --tokens-file,\n"
    "the entry is appended to FILE (created with mode 0600 when missing); then send\n"
    "registryd SIGHUP. --config FILE: also accept the roles of its auth.roles.\n";

const char* const roles_usage =
    "Usage: registryd roles [--markdown] [--config FILE]\n"
    "\n"
    "Prints the roles and the permission families each holds (--markdown: as the table\n"
    "in docs/protocol.md); --config FILE adds the custom roles of its auth.roles.\n";

struct failure {
    std::string message;
};

std::string base64url(const unsigned char* p, std::size_t n) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (std::size_t i = 0; i < n; ++i) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0) out += alphabet[(acc << (6 - bits)) & 63];
    return out;
}

// A YAML double-quoted scalar.
std::string yaml_quoted(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

bool printable(std::string_view s) {
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return false;
    return !s.empty();
}

role_table roles_from(const std::optional<std::string>& config_file) {
    if (!config_file) return role_table{};
    config cfg;
    apply_yaml_file(cfg, *config_file);
    return role_table(cfg.auth ? cfg.auth->roles : decltype(cfg.auth->roles){});
}

// Appends `entry` to the tokens file, creating it (mode 0600) with a
// `tokens:` key; the result must still read as a tokens file, or the file is
// left as it was.
void append_entry(const std::filesystem::path& file, const std::string& entry, const role_table& roles) {
    std::string before;
    {
        std::ifstream in(file, std::ios::binary);
        if (in) {
            std::ostringstream s;
            s << in.rdbuf();
            before = s.str();
        }
    }
    const bool existed = std::filesystem::exists(file);
    std::string after = existed ? before : "tokens:\n";
    if (!after.empty() && after.back() != '\n') after += '\n';
    after += entry;
    parse_tokens(after, file.string(), roles);  // throws config_error: nothing written
    const std::filesystem::path tmp = file.string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << after;
        out.flush();
        if (!out) throw failure{"cannot write " + tmp.string()};
    }
    struct ::stat st {};
    const mode_t mode = existed && ::stat(file.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0600;
    ::chmod(tmp.c_str(), mode);
    std::error_code ec;
    std::filesystem::rename(tmp, file, ec);
    if (ec) {
        std::filesystem::remove(tmp, ec);
        throw failure{"cannot replace " + file.string()};
    }
}

int token_new(const std::vector<std::string_view>& args) {
    std::optional<std::string> name, role_name, tokens_file, config_file;
    std::vector<std::string> services;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view a = args[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= args.size() || args[i + 1].starts_with("--"))
                throw failure{std::string(a) + ": missing value"};
            return std::string(args[++i]);
        };
        if (a == "--name") {
            name = value();
        } else if (a == "--role") {
            role_name = value();
        } else if (a == "--services") {
            services.push_back(value());
            while (i + 1 < args.size() && !args[i + 1].starts_with("--")) services.emplace_back(args[++i]);
        } else if (a == "--tokens-file") {
            tokens_file = value();
        } else if (a == "--config") {
            config_file = value();
        } else if (a == "-h" || a == "--help") {
            std::fputs(token_usage, stdout);
            return 0;
        } else {
            throw failure{"unknown argument \"" + std::string(a) + "\""};
        }
    }
    if (!name) throw failure{"--name is required"};
    if (!role_name) throw failure{"--role is required"};
    if (!printable(*name)) throw failure{"--name: must be non-empty, without control characters"};
    for (const auto& s : services)
        if (!printable(s)) throw failure{"--services: patterns must be non-empty, without control characters"};
    const role_table roles = roles_from(config_file);
    const role* r = roles.find(*role_name);
    if (!r) throw failure{"--role: unknown role '" + *role_name + "' (roles: " + roles.names() + ")"};

    std::array<unsigned char, 32> random{};
    if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1)
        throw failure{"cannot draw random bytes (OpenSSL RAND_bytes failed)"};
    const std::string token = base64url(random.data(), random.size());

    std::string entry = "  - name: " + yaml_quoted(*name) + "\n    sha256: " + hex(sha256_of(token)) +
                        "\n    role: " + yaml_quoted(r->name) + "\n";
    if (!services.empty()) {
        entry += "    services: [";
        for (std::size_t i = 0; i < services.size(); ++i) entry += (i ? ", " : "") + yaml_quoted(services[i]);
        entry += "]\n";
    }
    if (tokens_file) append_entry(*tokens_file, entry, roles);

    std::printf("%s\n", token.c_str());
    std::fflush(stdout);
    if (tokens_file) {
        std::fprintf(stderr,
                     "registryd: the token above is shown once (%s keeps only its SHA-256);\n"
                     "added '%s' (role %s) to %s: send registryd SIGHUP to load it.\n",
                     tokens_file->c_str(), name->c_str(), r->name.c_str(), tokens_file->c_str());
    } else {
        std::fprintf(stderr,
                     "registryd: the token above is shown once; registryd keeps only its SHA-256.\n"
                     "Add this entry under `tokens:` in the tokens file (auth.tokens_file), then send\n"
                     "registryd SIGHUP:\n\n%s",
                     entry.c_str());
    }
    return 0;
}

int roles(const std::vector<std::string_view>& args) {
    bool markdown = false;
    std::optional<std::string> config_file;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--markdown") {
            markdown = true;
        } else if (args[i] == "--config" && i + 1 < args.size()) {
            config_file = std::string(args[++i]);
        } else if (args[i] == "-h" || args[i] == "--help") {
            std::fputs(roles_usage, stdout);
            return 0;
        } else {
            throw failure{"unknown argument \"" + std::string(args[i]) + "\""};
        }
    }
    const role_table table = roles_from(config_file);
    std::string out;
    if (markdown) {
        out = table.markdown();
    } else {
        for (const auto& r : table.roles()) {
            out += r.name + ":";
            for (std::size_t i = 0; i < registry::protocol::permission_family_count; ++i) {
                const auto f = static_cast<registry::protocol::permission_family>(i);
                if (r.permissions.allows(f)) out += " " + std::string(to_string(f));
            }
            if (r.admin) out += " (admin)";
            out += '\n';
        }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

}  // namespace

std::optional<int> run_command(int argc, const char* const* argv) {
    if (argc < 2) return std::nullopt;
    const std::string_view command = argv[1];
    if (command != "token" && command != "roles") return std::nullopt;
    std::vector<std::string_view> args(argv + 2, argv + argc);
    try {
        if (command == "roles") return roles(args);
        if (args.empty() || args.front() != "new") {
            std::fputs(token_usage, stderr);
            return usage_error;
        }
        args.erase(args.begin());
        return token_new(args);
    } catch (const failure& f) {
        std::fprintf(stderr, "registryd %s: %s\n", argv[1], f.message.c_str());
        std::fputs(command == "roles" ? roles_usage : token_usage, stderr);
        return usage_error;
    } catch (const config_error& e) {
        std::fprintf(stderr, "registryd %s: %s\n", argv[1], e.what());
        return usage_error;
    }
}

}  // namespace registryd::access
