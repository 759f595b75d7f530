// The one UTF-8 scanner (codec/utf8.hpp) and what is built on it: the
// validator of WebSocket text, valid_utf8 for container output in events,
// the REPL's output streams.
#include "codec/utf8.hpp"
#include "repl/utf8_stream.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

using registry::detail::utf8_scanner;
using step = utf8_scanner::step;

namespace {

// The steps of `bytes`, one letter each: c(omplete), p(artial), i(nvalid).
std::string steps(std::string_view bytes) {
    utf8_scanner s;
    std::string out;
    for (const char c : bytes) {
        switch (s.next(static_cast<unsigned char>(c))) {
            case step::complete: out += 'c'; break;
            case step::partial: out += 'p'; break;
            case step::invalid: out += 'i'; break;
        }
    }
    return out;
}

}  // namespace

TEST_CASE("utf8 scanner: characters of one to four bytes, each byte's step") {
    CHECK(steps("a") == "c");
    CHECK(steps("\xC3\xA9") == "pc");              // U+00E9
    CHECK(steps("\xE2\x82\xAC") == "ppc");         // U+20AC
    CHECK(steps("\xF0\x9F\x98\x80") == "pppc");    // U+1F600
    CHECK(steps("\xF4\x8F\xBF\xBF") == "pppc");    // U+10FFFF, the last
}

TEST_CASE("utf8 scanner: overlongs, surrogates, past U+10FFFF and stray bytes are invalid at the byte that shows it") {
    CHECK(steps("\xC0\x80") == "ii");          // C0 and C1 never start a character
    CHECK(steps("\xE0\x80\x80") == "pii");     // overlong three-byte form
    CHECK(steps("\xED\xA0\x80") == "pii");     // U+D800
    CHECK(steps("\xF0\x80\x80\x80") == "piii");  // overlong four-byte form
    CHECK(steps("\xF4\x90\x80\x80") == "piii");  // U+110000
    CHECK(steps("\xF5") == "i");
    CHECK(steps("\x80") == "i");
    // After an invalid byte the scanner is between characters again.
    CHECK(steps("\xE2\x82" "a") == "ppi");  // the byte that broke the sequence is not taken
    utf8_scanner s;
    CHECK(s.next(0xE2) == step::partial);
    CHECK_FALSE(s.at_boundary());
    CHECK(s.next('a') == step::invalid);
    CHECK(s.at_boundary());
    CHECK(s.next('a') == step::complete);
}

TEST_CASE("utf8: the length of the character a string starts with") {
    using registry::detail::utf8_sequence;
    CHECK(utf8_sequence("ab") == 1);
    CHECK(utf8_sequence("\xE2\x82\xAC!") == 3);
    CHECK(utf8_sequence("\xE2\x82") == 0);  // truncated
    CHECK(utf8_sequence("\xE2\x82!") == 0);
    CHECK(utf8_sequence("") == 0);
}

TEST_CASE("utf8: valid_utf8 replaces every byte that starts no valid character, the stream each broken sequence") {
    using registry::detail::valid_utf8;
    CHECK(valid_utf8("caf\xC3\xA9") == "caf\xC3\xA9");
    CHECK(valid_utf8("a\xFF" "b") == "a\xEF\xBF\xBD" "b");
    CHECK(valid_utf8("\xE2\x82!") == "\xEF\xBF\xBD\xEF\xBF\xBD!");
    CHECK(valid_utf8("\xE2\x82") == "\xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(registry::repl::detail::to_valid_utf8("\xE2\x82!") == "\xEF\xBF\xBD!");
    CHECK(registry::repl::detail::to_valid_utf8("\xE2\x82") == "\xEF\xBF\xBD");
    CHECK(registry::repl::detail::to_valid_utf8("\xFF\xFE" "a") == "\xEF\xBF\xBD\xEF\xBF\xBD" "a");
}
