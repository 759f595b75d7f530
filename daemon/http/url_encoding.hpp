// Percent-encoding of URL query values (RFC 3986; '+' is a space when
// decoding, as HTML forms send it).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace registryd {

// %XX and '+' decoded; nullopt for a broken escape.
std::optional<std::string> url_decode(std::string_view s);
// Every byte but the unreserved ones (A-Z a-z 0-9 - . _ ~ and '/') as %XX.
std::string url_encode(std::string_view s);

}  // namespace registryd
