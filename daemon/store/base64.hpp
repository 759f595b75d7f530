// Standard base64 (RFC 4648 section 4, with padding): etcd's JSON gateway
// carries keys and values as base64 bytes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace registryd {

std::string base64_encode(std::string_view bytes);
// nullopt when `text` is not padded standard base64.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace registryd
