#include <registry/identity.hpp>

#include <algorithm>

namespace registry {

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
    // Greedy with one backtrack point: linear in practice, no recursion.
    std::size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
    while (t < text.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            resume = t;
        } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
            ++p;
            ++t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

bool identity::may_name_service(std::string_view service) const noexcept {
    if (admin || services.empty()) return true;
    return std::any_of(services.begin(), services.end(),
                       [&](const std::string& pattern) { return glob_match(pattern, service); });
}

const identity& identity::anonymous() {
    static const identity a{"anonymous", true, {}};
    return a;
}

}  // namespace registry
