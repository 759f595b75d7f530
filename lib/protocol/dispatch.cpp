#include "dispatch.hpp"

#include <algorithm>

namespace registry::protocol {

namespace {

bool by_name(const action_entry& e, std::string_view name) noexcept { return e.name < name; }

}  // namespace

void dispatch_table::add(const action_entry& e) {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), e.name, by_name);
    if (it != entries_.end() && it->name == e.name) {
        *it = e;
    } else {
        entries_.insert(it, e);
    }
}

void dispatch_table::add_absent(std::initializer_list<std::string_view> names, permission_family family,
                                std::string_view why) {
    for (std::string_view name : names) add(action_entry{name, family, nullptr, nullptr, why});
}

void dispatch_table::answer_absent(errc code, std::string_view why) {
    for (auto& e : entries_) {
        if (e.start) continue;
        e.absent = why;
        e.absent_code = code;
    }
}

void dispatch_table::relay_all_but(permission_family local) {
    for (auto& e : entries_) e.relayed = e.family != local;
}

const action_entry* dispatch_table::find(std::string_view name) const noexcept {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), name, by_name);
    return it != entries_.end() && it->name == name ? &*it : nullptr;
}

}  // namespace registry::protocol
