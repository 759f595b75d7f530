#include "access/authenticator.hpp"

#include <openssl/crypto.h>

namespace registryd::access {

std::shared_ptr<const registry::protocol::principal> authenticator::find(std::optional<std::string_view> token,
                                                                         std::optional<std::string_view> subject) const {
    if (token) {
        const digest presented = sha256_of(*token);
        const token_entry* match = nullptr;
        // Every entry is compared: the time does not depend on which matched.
        for (const auto& e : entries_) {
            if (e.sha256 && CRYPTO_memcmp(e.sha256->data(), presented.data(), presented.size()) == 0 && !match)
                match = &e;
        }
        if (match) return match->caller;
    }
    if (subject) {
        for (const auto& e : entries_)
            if (e.subject && *e.subject == *subject) return e.caller;
    }
    return nullptr;
}

}  // namespace registryd::access
