#include "lease_visibility.hpp"

#include <algorithm>
#include <memory>

namespace registry::protocol {

namespace {

service_ptr without_lease_id(const service_ptr& s) {
    auto copy = std::make_shared<service_instance>(*s);
    copy->lease.id = 0;
    return copy;
}

}  // namespace

event_ptr visible_to(const event_ptr& e, const ::registry::identity& viewer) {
    if (viewer.admin) return e;
    auto hidden = [&](const service_ptr& s) { return s && !sees_lease_id(viewer, *s); };
    const bool service_hidden = hidden(e->service);
    const bool snapshot_hidden = std::any_of(e->snapshot.begin(), e->snapshot.end(), hidden);
    if (!service_hidden && !snapshot_hidden) return e;
    auto copy = std::make_shared<event>(*e);
    copy->wire.reset();  // the copy is encoded for its viewer
    if (service_hidden) copy->service = without_lease_id(e->service);
    if (snapshot_hidden) {
        for (auto& s : copy->snapshot) {
            if (hidden(s)) s = without_lease_id(s);
        }
    }
    return copy;
}

}  // namespace registry::protocol
