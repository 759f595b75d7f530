// Lease ids are shown to their holder and to admins only (docs/protocol.md,
// "Ownership"): a lease id grants nothing without the holder's identity, but
// there is no reason to hand it out either.
#pragma once

#include <registry/event.hpp>
#include <registry/identity.hpp>
#include <registry/service.hpp>

namespace registry::protocol {

inline bool sees_lease_id(const ::registry::identity& viewer, const service_instance& s) noexcept {
    return viewer.may_act_for(s.lease.holder);
}

// `e` itself when `viewer` may see every lease id in it (admins always); else
// a copy whose services not held by `viewer` have lease id 0, which the
// encoder leaves out. The copy has no encoding of its own yet.
event_ptr visible_to(const event_ptr& e, const ::registry::identity& viewer);

}  // namespace registry::protocol
