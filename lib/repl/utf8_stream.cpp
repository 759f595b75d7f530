#include "utf8_stream.hpp"

#include <cstddef>

namespace registry::repl::detail {

namespace {

constexpr std::string_view replacement = "\xEF\xBF\xBD";

// The length of the sequence a lead byte starts, 0 for a byte that cannot
// start one.
std::size_t sequence_length(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

// RFC 3629's table: the second byte's range depends on the lead (no
// overlongs, no surrogates, nothing above U+10FFFF); later ones are 80-BF.
bool valid_continuation(unsigned char lead, std::size_t index, unsigned char c) {
    if (index == 1) {
        if (lead == 0xE0) return c >= 0xA0 && c <= 0xBF;
        if (lead == 0xED) return c >= 0x80 && c <= 0x9F;
        if (lead == 0xF0) return c >= 0x90 && c <= 0xBF;
        if (lead == 0xF4) return c >= 0x80 && c <= 0x8F;
    }
    return c >= 0x80 && c <= 0xBF;
}

// Appends the valid text of `s` to `out`; returns where an incomplete
// trailing sequence starts (s.size() if there is none).
std::size_t convert(std::string_view s, std::string& out) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto lead = static_cast<unsigned char>(s[i]);
        const std::size_t n = sequence_length(lead);
        if (n == 1) {
            out.push_back(s[i++]);
            continue;
        }
        if (n == 0) {
            out += replacement;
            ++i;
            continue;
        }
        std::size_t k = 1;
        while (k < n && i + k < s.size() && valid_continuation(lead, k, static_cast<unsigned char>(s[i + k]))) ++k;
        if (k == n) {
            out.append(s.substr(i, n));
            i += n;
        } else if (i + k == s.size()) {
            return i;  // so far so good, but the rest has not arrived
        } else {
            out += replacement;
            i += k;  // the bytes that looked right belong to the broken sequence
        }
    }
    return s.size();
}

}  // namespace

std::string utf8_stream::feed(std::string_view bytes) {
    std::string in = std::move(carry_);
    in.append(bytes);
    std::string out;
    out.reserve(in.size());
    const std::size_t rest = convert(in, out);
    carry_.assign(in, rest);
    return out;
}

std::string utf8_stream::finish() {
    std::string out;
    if (!carry_.empty()) out = replacement;
    carry_.clear();
    return out;
}

std::string to_valid_utf8(std::string_view bytes) {
    utf8_stream s;
    std::string out = s.feed(bytes);
    out += s.finish();
    return out;
}

}  // namespace registry::repl::detail
