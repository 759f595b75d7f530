#include "utf8_stream.hpp"

#include "codec/utf8.hpp"

#include <cstddef>

namespace registry::repl::detail {

namespace {

constexpr std::string_view replacement = "\xEF\xBF\xBD";

// Appends the valid text of `s` to `out`; returns where an incomplete
// trailing sequence starts (s.size() if there is none).
std::size_t convert(std::string_view s, std::string& out) {
    using step = registry::detail::utf8_scanner::step;
    registry::detail::utf8_scanner scanner;
    std::size_t start = 0;  // where the character being scanned starts
    std::size_t i = 0;
    while (i < s.size()) {
        switch (scanner.next(static_cast<unsigned char>(s[i]))) {
            case step::complete:
                out.append(s.substr(start, i + 1 - start));
                start = ++i;
                break;
            case step::partial:
                ++i;
                break;
            case step::invalid:
                out += replacement;
                // A byte that cannot start a character is skipped; the bytes
                // that looked right belong to the broken sequence, and the
                // one that broke it is scanned again as a start.
                if (i == start) ++i;
                start = i;
                break;
        }
    }
    return start;  // so far so good, but the rest has not arrived
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
