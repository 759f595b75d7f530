// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) for the webhooks'
// X-Registry-Signature. The library links no crypto library (the core and
// its parts depend on simdjson at most), and a signature is all it needs:
// about a hundred lines, checked against the FIPS and RFC 4231 vectors
// (tests/unit/test_notifier.cpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace registry::notify {

using sha256_digest = std::array<std::uint8_t, 32>;

class sha256 {
public:
    sha256() noexcept;
    void update(std::string_view data) noexcept;
    sha256_digest finish() noexcept;

private:
    void block(const std::uint8_t* p) noexcept;

    std::array<std::uint32_t, 8> h_;
    std::array<std::uint8_t, 64> buf_{};
    std::size_t used_ = 0;
    std::uint64_t length_ = 0;  // bytes
};

sha256_digest hmac_sha256(std::string_view key, std::string_view message) noexcept;

// Lowercase hex of the digest: 64 characters.
std::string to_hex(const sha256_digest& d);

}  // namespace registry::notify
