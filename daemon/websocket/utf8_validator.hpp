// Incremental UTF-8 validation (RFC 3629): a text message arrives in pieces
// (frames, reads) that may split a character, so the validator carries the
// state of an unfinished sequence from one piece to the next. Rejects
// overlong encodings, surrogates (U+D800-U+DFFF) and code points above
// U+10FFFF as soon as the offending byte is seen.
#pragma once

#include <cstdint>
#include <string_view>

namespace registryd {

class utf8_validator {
public:
    // False as soon as `bytes` cannot continue valid UTF-8; the validator is
    // then spent (call reset() before reusing it).
    bool feed(std::string_view bytes) noexcept {
        for (const char c : bytes) {
            const auto b = static_cast<std::uint8_t>(c);
            if (pending_ == 0) {
                if (b < 0x80) continue;
                // The first continuation byte's range rules out overlongs,
                // surrogates and values above U+10FFFF.
                if (b >= 0xC2 && b <= 0xDF) {
                    start(1, 0x80, 0xBF);
                } else if (b == 0xE0) {
                    start(2, 0xA0, 0xBF);
                } else if (b == 0xED) {
                    start(2, 0x80, 0x9F);
                } else if (b >= 0xE1 && b <= 0xEF) {
                    start(2, 0x80, 0xBF);
                } else if (b == 0xF0) {
                    start(3, 0x90, 0xBF);
                } else if (b >= 0xF1 && b <= 0xF3) {
                    start(3, 0x80, 0xBF);
                } else if (b == 0xF4) {
                    start(3, 0x80, 0x8F);
                } else {
                    return false;
                }
                continue;
            }
            if (b < lo_ || b > hi_) return false;
            --pending_;
            lo_ = 0x80;
            hi_ = 0xBF;
        }
        return true;
    }

    // True when no character is left unfinished (the end of a message).
    bool complete() const noexcept { return pending_ == 0; }

    void reset() noexcept { pending_ = 0; }

private:
    void start(std::uint8_t continuation_bytes, std::uint8_t lo, std::uint8_t hi) noexcept {
        pending_ = continuation_bytes;
        lo_ = lo;
        hi_ = hi;
    }

    std::uint8_t pending_ = 0;  // continuation bytes still expected
    std::uint8_t lo_ = 0x80;    // the range of the next continuation byte
    std::uint8_t hi_ = 0xBF;
};

}  // namespace registryd
