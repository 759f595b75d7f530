// The JSON writer: separators, escaping, numbers.
#include "codec/json_writer.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>

using registry::detail::json_writer;

TEST_CASE("json_writer: nested objects and arrays get their commas") {
    std::string out;
    json_writer w(out);
    w.begin_object()
        .key("a").number(1)
        .key("b").begin_array().number(1).string("x").begin_object().end_object().begin_array().end_array().end_array()
        .key("c").begin_object().key("d").null().key("e").boolean(true).key("f").boolean(false).end_object()
        .end_object();
    CHECK(out == R"({"a":1,"b":[1,"x",{},[]],"c":{"d":null,"e":true,"f":false}})");
}

TEST_CASE("json_writer: appends after existing text, including members of an open object") {
    std::string out = R"({"type":"event",)";
    json_writer w(out);
    w.key("n").number(2).end_object();
    CHECK(out == R"({"type":"event","n":2})");

    std::string members;
    json_writer m(members);
    m.key("x").number(1).key("y").begin_array().boolean(true).end_array();
    CHECK(members == R"("x":1,"y":[true])");
}

TEST_CASE("json_writer: strings are escaped, control characters included") {
    std::string out;
    json_writer w(out);
    w.string(std::string("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f", 14));
    CHECK(out == R"("q\"b\\s/\b\f\n\r\t\u0001\u001f)" "\x7f\"");

    out.clear();
    w.string(std::string("a\0b", 3));
    CHECK(out == R"("a\u0000b")");

    out.clear();
    w.key("caf\xc3\xa9 \xf0\x9f\x9a\x80").string("");
    CHECK(out == "\"caf\xc3\xa9 \xf0\x9f\x9a\x80\":\"\"");
}

TEST_CASE("json_writer: integers over the whole 64-bit ranges") {
    std::string out;
    json_writer w(out);
    w.begin_array()
        .number(std::numeric_limits<std::int64_t>::min())
        .number(std::numeric_limits<std::uint64_t>::max())
        .number(std::uint16_t{65535})
        .number(0)
        .end_array();
    CHECK(out == "[-9223372036854775808,18446744073709551615,65535,0]");
}

TEST_CASE("json_writer: a character to escape is found at every position of short and long strings") {
    // Strings are checked a word at a time with overlapping tails: put each
    // special byte at each position of each length, around the word sizes,
    // the stack-assembled limit and beyond.
    const std::string specials = std::string("\"\\\x00\x1f\n", 5);
    for (std::size_t length : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 119, 120, 121, 200}) {
        for (std::size_t at = 0; at < length; ++at) {
            for (char special : specials) {
                std::string value(length, 'a');
                value[at] = special;
                std::string out;
                json_writer w(out);
                w.key(value).string(value);
                std::string expected = "\"" + std::string(at, 'a');
                switch (special) {
                    case '"': expected += "\\\""; break;
                    case '\\': expected += "\\\\"; break;
                    case '\n': expected += "\\n"; break;
                    case '\x1f': expected += "\\u001f"; break;
                    default: expected += "\\u0000";
                }
                expected += std::string(length - at - 1, 'a') + "\"";
                INFO("length ", length, " at ", at, " byte ", int(special));
                REQUIRE(out == expected + ":" + expected);
            }
        }
    }
}

TEST_CASE("json_writer: plain strings of every length are copied whole, bytes above 0x7f untouched") {
    std::string alphabet;
    for (int c = 0x20; c < 0x100; ++c) {
        if (c != '"' && c != '\\') alphabet += static_cast<char>(c);
    }
    for (std::size_t length = 0; length <= alphabet.size(); ++length) {
        const std::string value = alphabet.substr(alphabet.size() - length);
        std::string out = "[";
        json_writer w(out);
        w.string(value).number(length).begin_object().key(value).boolean(false).end_object().null().end_array();
        REQUIRE(out == "[\"" + value + "\"," + std::to_string(length) + ",{\"" + value + "\":false},null]");
    }
}
