// The random port: bytes nobody can predict, for the ids that must not be
// guessed (upload ids, execution ids: knowing one is how a client names what
// it owns). The embedder implements it with a CSPRNG (registryd: OpenSSL's
// RAND_bytes); tests with testing::fake_random, deterministic.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace registry {

class random_source {
public:
    virtual ~random_source() = default;

    // Fills `out`. Must not fail short: an embedder whose generator cannot
    // deliver terminates rather than hand out guessable ids.
    virtual void fill(std::span<std::byte> out) = 0;
};

// An id of `prefix` and 32 lowercase hex digits: 128 bits from `random`.
inline std::string random_id(random_source& random, std::string_view prefix) {
    std::byte bytes[16];
    random.fill(bytes);
    static constexpr char digits[] = "0123456789abcdef";
    std::string id(prefix);
    id.reserve(prefix.size() + 32);
    for (std::byte b : bytes) {
        id.push_back(digits[std::to_integer<unsigned>(b) >> 4]);
        id.push_back(digits[std::to_integer<unsigned>(b) & 15]);
    }
    return id;
}

}  // namespace registry
