// The tokens file (auth.tokens_file): who may connect, as what role. It
// holds SHA-256 digests of tokens, never tokens, and may name a TLS client
// certificate subject instead of (or besides) a digest:
//
//   tokens:
//     - name: ci-deploy            # the identity: logs, audit, ownership
//       sha256: 9f86d0...          # hex SHA-256 of the token
//       role: deployer             # built-in or auth.roles
//       services: ["web-*"]        # optional service-name scope
//     - name: build-agent
//       subject: "CN=build-agent"  # a verified client certificate's subject
//       role: runner
//
// A file that group or others may write is refused: whoever can write it can
// grant themselves admin.
#pragma once

#include "access/role_table.hpp"

#include <registry/protocol/permission.hpp>

#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registryd::access {

using digest = std::array<unsigned char, 32>;

struct token_entry {
    std::optional<digest> sha256;
    std::optional<std::string> subject;
    std::shared_ptr<const registry::protocol::principal> caller;  // name, role's permissions, services
};

// Throws config_error naming the file and the entry (tokens[2].role: ...).
std::vector<token_entry> parse_tokens(std::string_view yaml, std::string_view origin, const role_table& roles);
// Reads `file` after checking that only its owner may write it.
std::vector<token_entry> load_tokens_file(const std::filesystem::path& file, const role_table& roles);

digest sha256_of(std::string_view bytes);
std::string hex(const digest& d);

}  // namespace registryd::access
