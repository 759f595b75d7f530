// A filtered subscriber resumes exactly across a restart: the bookmark sent at
// shutdown carries the revision of changes it did not receive, and the
// restarted daemon replays from there.
#include "harness.hpp"

#include <doctest/doctest.h>

#include <csignal>

using it::num;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;

TEST_CASE("integration: SIGTERM sends a bookmark, and a filtered subscriber resumes from it without a resync") {
    it::registryd d;
    IT_DIAGNOSE(d);

    json::value last;
    {
        it::ws_client sub(d);
        sub.call("subscribe", json::object{{"services", json::array{"api"}}, {"snapshot", false}});
        it::ws_client writer(d);
        writer.call("register", it::registration(it::service("api", "api-1"), 300));
        CHECK(num(sub.expect_event("service_registered"), "/revision") == 1);
        const json::value other = writer.call("register", it::registration(it::service("other", "other-1"), 300));
        REQUIRE(num(other, "/revision") == 2);

        d.signal(SIGTERM);
        const auto bookmark = sub.next_event(5s, true);
        REQUIRE_MESSAGE(bookmark.has_value(), "no bookmark before the close");
        CHECK(str(*bookmark, "/event") == "bookmark");
        CHECK(num(*bookmark, "/revision") == 2);
        CHECK(sub.wait_closed(5s).close_frame);
        REQUIRE(d.wait_exit(10s).has_value());
    }

    d.start();
    it::ws_client sub(d);
    sub.call("subscribe", json::object{{"services", json::array{"api"}}, {"from_revision", 2}});
    it::ws_client writer(d);
    writer.call("register", it::registration(it::service("api", "api-2"), 300));
    const json::value e = sub.expect_event("service_registered");  // not resync_required
    CHECK(num(e, "/revision") == 3);
    CHECK(str(e, "/data/service/instance_id") == "api-2");
}
