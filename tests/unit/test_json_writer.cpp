// The JSON writer: separators, escaping, numbers.
#include "json_writer.hpp"

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
