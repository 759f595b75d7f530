// Incremental UTF-8 validation of text messages (RFC 6455 5.6, 8.1): the
// library's one UTF-8 scanner (lib/codec/utf8.hpp), which carries an
// unfinished character from one frame or read to the next and rejects
// overlong encodings, surrogates and code points above U+10FFFF as soon as
// the offending byte is seen.
#pragma once

#include "codec/utf8.hpp"

namespace registryd {

using utf8_validator = registry::detail::utf8_validator;

}  // namespace registryd
