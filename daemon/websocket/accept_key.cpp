#include "websocket/accept_key.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <array>

namespace registryd::websocket {

namespace {

constexpr std::string_view handshake_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool is_base64_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

}  // namespace

bool is_valid_key(std::string_view key) noexcept {
    // 16 bytes are 22 base64 characters and "==". The last character before
    // the padding carries 2 bits of data: its 4 low bits are zero.
    if (key.size() != 24 || key.substr(22) != "==") return false;
    for (const char c : key.substr(0, 22))
        if (!is_base64_char(c)) return false;
    constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    return (alphabet.find(key[21]) & 0x0F) == 0;
}

std::string accept_key(std::string_view key) {
    std::string input(key);
    input.append(handshake_guid);
    std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
    SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest.data());
    std::array<unsigned char, 4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1> encoded{};
    const int n = EVP_EncodeBlock(encoded.data(), digest.data(), static_cast<int>(digest.size()));
    return std::string(reinterpret_cast<const char*>(encoded.data()), static_cast<std::size_t>(n));
}

}  // namespace registryd::websocket
