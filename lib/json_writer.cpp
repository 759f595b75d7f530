#include "json_writer.hpp"

#include <array>

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

}  // namespace

// Copies runs of plain bytes in one go. UTF-8 passes through untouched: every
// string we write was validated as UTF-8 by the JSON parser or is our own.
void json_writer::quoted(std::string_view s) {
    constexpr char hex[] = "0123456789abcdef";
    out_->push_back('"');
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
    out_->push_back('"');
}

}  // namespace registry::detail
