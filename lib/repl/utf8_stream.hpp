// Turns a byte stream that arrives in arbitrary pieces into valid UTF-8 (the
// protocol's JSON strings must be): a multi-byte character split across two
// pieces is held back until it is complete, an invalid byte becomes U+FFFD.
#pragma once

#include <string>
#include <string_view>

namespace registry::repl::detail {

class utf8_stream {
public:
    // The valid text of what is held back plus `bytes`, without an incomplete
    // trailing character (kept for the next call).
    std::string feed(std::string_view bytes);
    // At the end of the stream: what is held back, as U+FFFD.
    std::string finish();

private:
    std::string carry_;
};

// All of `bytes` as valid UTF-8 (a truncated trailing character: U+FFFD).
std::string to_valid_utf8(std::string_view bytes);

}  // namespace registry::repl::detail
