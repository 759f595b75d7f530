// Who makes a request, as the domain sees it: a name that owns what it
// creates, whether it may act on what others own, and the service names it
// may act on. How a client proves who it is (a token, a certificate) is the
// embedder's business; the library only checks ownership and scopes with it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace registry {

struct identity {
    std::string name;
    bool admin = false;                 // may act on what any identity owns, and on any service
    std::vector<std::string> services;  // service-name patterns ('*' matches any run); empty: every service

    // What `owner` created, this identity may stop, remove, extend, cancel...
    bool may_act_for(std::string_view owner) const noexcept { return admin || owner == name; }
    // Whether `service` is inside this identity's service scope.
    bool may_name_service(std::string_view service) const noexcept;

    // The identity of every request when access control is off: an admin
    // named "anonymous", so behaviour is that of a registry without owners.
    static const identity& anonymous();
};

// `text` matches `pattern`, where '*' matches any run of characters
// (none included), '?' any one character and every other character itself.
// Iterative with one backtrack point: never exponential on a hostile pattern.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

}  // namespace registry
