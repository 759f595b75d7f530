#include "json_writer.hpp"

#include <array>
#include <cstdint>
#include <cstring>

namespace registry::detail {

namespace {

// For each byte: 0 = copy as is, 'u' = \u00XX, otherwise the letter after '\'.
constexpr std::array<char, 256> escapes = [] {
    std::array<char, 256> t{};
    for (int c = 0; c < 0x20; ++c) t[c] = 'u';
    t['\b'] = 'b';
    t['\f'] = 'f';
    t['\n'] = 'n';
    t['\r'] = 'r';
    t['\t'] = 't';
    t['"'] = '"';
    t['\\'] = '\\';
    return t;
}();

// Tokens up to this size are assembled on the stack and appended at once.
constexpr std::size_t small_token = 120;

std::uint64_t load8(const char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
std::uint32_t load4(const char* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Nonzero when a byte of the word is a control character, '"' or '\\'.
// (v - ones * n) & ~v & highs is nonzero exactly when a byte of v is below
// n (for n <= 128); a byte equal to c is a zero byte of v ^ (ones * c).
std::uint64_t specials(std::uint64_t v) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101;
    constexpr std::uint64_t highs = 0x8080808080808080;
    const auto below = [](std::uint64_t x, std::uint64_t n) { return (x - ones * n) & ~x & highs; };
    return below(v, 0x20) | below(v ^ (ones * '"'), 1) | below(v ^ (ones * '\\'), 1);
}

// Copies `s` (at most small_token bytes) to `to` and tells whether a byte of
// it must be escaped, a word at a time, with overlapping loads for the tail
// rather than a byte loop or a call to memcpy: nearly everything we write
// is short and plain, and a byte-by-byte table lookup used to cost more than
// the rest of writing a response.
bool copy_plain(std::string_view s, char* to) noexcept {
    const char* from = s.data();
    const std::size_t n = s.size();
    std::uint64_t found = 0;
    if (n >= 8) {
        for (std::size_t i = 0; i + 8 < n; i += 8) {
            const std::uint64_t v = load8(from + i);
            found |= specials(v);
            std::memcpy(to + i, &v, 8);
        }
        const std::uint64_t last = load8(from + n - 8);
        found |= specials(last);
        std::memcpy(to + n - 8, &last, 8);
    } else if (n >= 4) {
        const std::uint32_t lo = load4(from);
        const std::uint32_t hi = load4(from + n - 4);
        found = specials(lo | std::uint64_t{hi} << 32);
        std::memcpy(to, &lo, 4);
        std::memcpy(to + n - 4, &hi, 4);
    } else if (n > 0) {
        // The first, middle and last bytes cover 1-3 bytes; the rest of the
        // word is filled with a plain letter.
        const auto a = static_cast<unsigned char>(from[0]);
        const auto b = static_cast<unsigned char>(from[n / 2]);
        const auto c = static_cast<unsigned char>(from[n - 1]);
        to[0] = from[0];
        to[n / 2] = from[n / 2];
        to[n - 1] = from[n - 1];
        found = specials(0x6161616161000000 | std::uint64_t{c} << 16 | std::uint64_t{b} << 8 | a);
    }
    return found != 0;
}

}  // namespace

void json_writer::quoted(std::string_view s, bool is_key) {
    const bool comma = needs_comma();
    if (s.size() <= small_token) {
        char buf[small_token + 4];
        buf[0] = ',';
        char* p = buf + comma;
        *p++ = '"';
        if (!copy_plain(s, p)) {
            p += s.size();
            *p++ = '"';
            *p = ':';
            p += is_key;
            out_->append(buf, static_cast<std::size_t>(p - buf));
            return;
        }
    }
    if (comma) out_->push_back(',');
    out_->push_back('"');
    escaped(s);
    out_->push_back('"');
    if (is_key) out_->push_back(':');
}

// Copies runs of plain bytes in one go. UTF-8 passes through untouched: every
// string we write was validated as UTF-8 by the JSON parser or is our own.
void json_writer::escaped(std::string_view s) {
    constexpr char hex[] = "0123456789abcdef";
    std::size_t run = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        const char e = escapes[c];
        if (e == 0) continue;
        out_->append(s.data() + run, i - run);
        run = i + 1;
        if (e == 'u') {
            const char seq[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
            out_->append(seq, sizeof seq);
        } else {
            const char seq[] = {'\\', e};
            out_->append(seq, sizeof seq);
        }
    }
    out_->append(s.data() + run, s.size() - run);
}

}  // namespace registry::detail
