// registry::client's resume bookkeeping (clients/cpp/src/resume_point.hpp),
// without a daemon: the same cases as the JavaScript client's ResumePoint
// (clients/js/test/resume_point.test.js).
#include "resume_point.hpp"

#include <doctest/doctest.h>

using registry::client::detail::resume_point;

TEST_CASE("client resume point: a revision is complete after its last event") {
    resume_point p({});
    p.start_at(3);
    CHECK(p.accept("service_registered", 5));
    CHECK(p.resume() == 5);  // a registration is a whole change
    CHECK(p.accept("lease_expired", 7));
    CHECK(p.resume() == 6);  // service_deregistered of revision 7 is still to come
    CHECK_FALSE(p.accept("lease_expired", 7));  // the replay repeats the delivered event of 7
    CHECK(p.accept("service_deregistered", 7));
    CHECK(p.resume() == 7);
}

TEST_CASE("client resume point: without service_deregistered in the filter, lease_expired completes its change") {
    resume_point p({"lease_expired"});
    CHECK(p.accept("lease_expired", 4));
    CHECK(p.resume() == 4);
}

TEST_CASE("client resume point: a replay skips exactly the events of the partial revision already delivered") {
    resume_point p({});
    p.start_at(9);
    CHECK(p.accept("lease_expired", 10));  // the first of two events of revision 10; then the connection drops
    CHECK(p.resume() == 9);
    // The server replays from 9: both events of 10, then 11.
    CHECK_FALSE(p.accept("lease_expired", 10));
    CHECK(p.accept("service_deregistered", 10));
    CHECK(p.accept("service_registered", 11));
    CHECK(p.last() == 11);
    CHECK(p.resume() == 11);
}

TEST_CASE("client resume point: snapshots and bookmarks complete their revision, resync_required does not") {
    resume_point p({});
    CHECK(p.accept("service_registered", 4));
    CHECK(p.accept("bookmark", 8));
    CHECK(p.resume() == 8);
    CHECK(p.accept("resync_required", 20));
    CHECK(p.resume() == 8);
    CHECK(p.accept("registry_loaded", 20));
    CHECK(p.resume() == 20);
}
