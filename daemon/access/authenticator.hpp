// Tokens and certificate subjects → principals, from the tokens file's
// entries (replaced whole on reload). A presented token is hashed and its
// digest compared with every entry's in constant time (CRYPTO_memcmp), so
// neither the comparison nor the entry it matches shows in the timing.
#pragma once

#include "access/tokens_file.hpp"

#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace registryd::access {

class authenticator {
public:
    explicit authenticator(std::vector<token_entry> entries) : entries_(std::move(entries)) {}

    void replace(std::vector<token_entry> entries) { entries_ = std::move(entries); }
    std::size_t size() const noexcept { return entries_.size(); }

    // nullptr: no entry matches (a token is tried before a subject).
    std::shared_ptr<const registry::protocol::principal> find(std::optional<std::string_view> token,
                                                              std::optional<std::string_view> subject) const;

private:
    std::vector<token_entry> entries_;
};

}  // namespace registryd::access
