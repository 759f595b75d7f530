// base64 as etcd's JSON gateway carries keys and values: RFC 4648's test
// vectors, bytes beyond ASCII, and what decoding refuses.
#include "store/base64.hpp"

#include <doctest/doctest.h>

#include <string>

using registryd::base64_decode;
using registryd::base64_encode;

TEST_CASE("base64: RFC 4648 vectors, both ways") {
    const std::pair<const char*, const char*> vectors[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                           {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},   {"fooba", "Zm9vYmE="},
                                                           {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, encoded] : vectors) {
        CHECK(base64_encode(plain) == encoded);
        CHECK(base64_decode(encoded) == std::string(plain));
    }
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    CHECK(base64_decode(base64_encode(all)) == all);
}

TEST_CASE("base64: decoding refuses what is not padded standard base64") {
    CHECK_FALSE(base64_decode("Zm9").has_value());      // not a multiple of 4
    CHECK_FALSE(base64_decode("Zm9v!A==").has_value()); // outside the alphabet
    CHECK_FALSE(base64_decode("Zm-_").has_value());     // the URL-safe alphabet
    CHECK_FALSE(base64_decode("Z===").has_value());     // too much padding
}
