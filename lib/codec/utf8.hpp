// UTF-8 (RFC 3629), checked in one place for the whole tree: the scanner
// below is the one implementation of the rules, and every reader of text
// from outside builds on it (registryd's WebSocket validation and its logs,
// a container's output in events, a REPL execution's output streams).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace registry::detail {

// Fed one byte at a time, it says whether the byte ends a character, is part
// of one still unfinished, or cannot stand there. The range of the first
// continuation byte depends on the lead (that rules out overlong forms,
// surrogates U+D800-U+DFFF and code points above U+10FFFF); later ones are
// 80-BF. Inline: the WebSocket transport runs every byte of a text message
// through it.
class utf8_scanner {
public:
    enum class step : std::uint8_t {
        complete,  // the byte ends a character
        partial,   // the byte starts or continues one that needs more
        invalid,   // the byte cannot stand here; the scanner is back between characters
    };

    step next(std::uint8_t b) noexcept {
        if (pending_ == 0) {
            if (b < 0x80) return step::complete;
            if (b >= 0xC2 && b <= 0xDF) return start(1, 0x80, 0xBF);
            if (b == 0xE0) return start(2, 0xA0, 0xBF);
            if (b == 0xED) return start(2, 0x80, 0x9F);
            if (b >= 0xE1 && b <= 0xEF) return start(2, 0x80, 0xBF);
            if (b == 0xF0) return start(3, 0x90, 0xBF);
            if (b >= 0xF1 && b <= 0xF3) return start(3, 0x80, 0xBF);
            if (b == 0xF4) return start(3, 0x80, 0x8F);
            return step::invalid;
        }
        if (b < lo_ || b > hi_) {
            reset();
            return step::invalid;
        }
        lo_ = 0x80;
        hi_ = 0xBF;
        return --pending_ == 0 ? step::complete : step::partial;
    }

    // True between characters: no sequence is left unfinished.
    bool at_boundary() const noexcept { return pending_ == 0; }

    void reset() noexcept {
        pending_ = 0;
        lo_ = 0x80;
        hi_ = 0xBF;
    }

private:
    step start(std::uint8_t continuation_bytes, std::uint8_t lo, std::uint8_t hi) noexcept {
        pending_ = continuation_bytes;
        lo_ = lo;
        hi_ = hi;
        return step::partial;
    }

    std::uint8_t pending_ = 0;  // continuation bytes still expected
    std::uint8_t lo_ = 0x80;    // the range of the next continuation byte
    std::uint8_t hi_ = 0xBF;
};

// Incremental validation: a text message arrives in pieces (frames, reads)
// that may split a character; the state of an unfinished one is carried from
// one piece to the next.
class utf8_validator {
public:
    // False as soon as `bytes` cannot continue valid UTF-8 (call reset()
    // before reusing the validator).
    bool feed(std::string_view bytes) noexcept {
        for (const char c : bytes) {
            const auto b = static_cast<std::uint8_t>(c);
            if (b < 0x80 && scanner_.at_boundary()) continue;
            if (scanner_.next(b) == utf8_scanner::step::invalid) return false;
        }
        return true;
    }

    // True when no character is left unfinished (the end of a message).
    bool complete() const noexcept { return scanner_.at_boundary(); }

    void reset() noexcept { scanner_.reset(); }

private:
    utf8_scanner scanner_;
};

// The length of the valid character `s` starts with; 0 if it does not start
// with one (an invalid or a truncated sequence).
inline std::size_t utf8_sequence(std::string_view s) noexcept {
    utf8_scanner scanner;
    for (std::size_t i = 0; i < s.size(); ++i) {
        switch (scanner.next(static_cast<std::uint8_t>(s[i]))) {
            case utf8_scanner::step::complete: return i + 1;
            case utf8_scanner::step::invalid: return 0;
            case utf8_scanner::step::partial: break;
        }
    }
    return 0;
}

// JSON strings are UTF-8; bytes are not. Every byte that does not start a
// valid character becomes U+FFFD.
std::string valid_utf8(std::string_view bytes);

}  // namespace registry::detail
