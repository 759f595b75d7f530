// Identities and permissions as the library sees them: service-name
// patterns, ownership, and the dispatch table's permission check.
#include "protocol_test_support.hpp"
#include "registry_test_support.hpp"

#include <registry/identity.hpp>
#include <registry/protocol/connection.hpp>
#include <registry/protocol/permission.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;

TEST_CASE("access: glob patterns match whole names") {
    CHECK(glob_match("web-*", "web-1"));
    CHECK(glob_match("web-*", "web-"));
    CHECK_FALSE(glob_match("web-*", "web"));
    CHECK_FALSE(glob_match("web-*", "xweb-1"));
    CHECK(glob_match("*-api", "payments-api"));
    CHECK_FALSE(glob_match("*-api", "payments-api-2"));
    CHECK(glob_match("a*b*c", "aXXbYYbc"));
    CHECK_FALSE(glob_match("a*b*c", "aXXbYYbd"));
    CHECK(glob_match("*", ""));
    CHECK(glob_match("exact", "exact"));
    CHECK_FALSE(glob_match("exact", "exactly"));
    CHECK_FALSE(glob_match("", "x"));
}

TEST_CASE("access: an identity's scope and ownership") {
    identity ci{"ci", false, {"web-*", "api"}};
    CHECK(ci.may_name_service("web-frontend"));
    CHECK(ci.may_name_service("api"));
    CHECK_FALSE(ci.may_name_service("payments"));
    CHECK(ci.may_act_for("ci"));
    CHECK_FALSE(ci.may_act_for("other"));

    identity unscoped{"svc", false, {}};
    CHECK(unscoped.may_name_service("payments"));

    const identity& anon = identity::anonymous();
    CHECK(anon.name == "anonymous");
    CHECK(anon.may_act_for("someone-else"));
    CHECK(anon.may_name_service("anything"));
}

TEST_CASE("access: permission family names round-trip") {
    using protocol::permission_family;
    for (std::size_t i = 0; i < protocol::permission_family_count; ++i) {
        auto f = static_cast<permission_family>(i);
        CHECK(protocol::permission_family_from(protocol::to_string(f)) == f);
    }
    CHECK_FALSE(protocol::permission_family_from("root").has_value());
    protocol::permission_set s{permission_family::discover};
    CHECK(s.allows(permission_family::discover));
    CHECK_FALSE(s.allows(permission_family::register_));
    CHECK(protocol::permission_set::all().allows(permission_family::deploy));
}

TEST_CASE("access: a request outside the caller's permissions is forbidden, and the connection goes on") {
    testing::fake_clock clk;
    testing::memory_store st;
    registry::registry reg{clk, st};
    REQUIRE(run_now(reg.open()).ok());
    protocol::server srv{reg};
    auto reader = std::make_shared<const protocol::principal>(
        protocol::principal{identity{"dashboard", false, {}}, {protocol::permission_family::discover}});
    client c(srv, 1, "10.0.0.1", reader);

    const std::string refused = c.ask(
        req("1", "register",
            R"({"service":{"name":"web","instance_id":"web-1","endpoints":[{"name":"http","address":"127.0.0.1","port":80,"protocol":"http"}]}})"),
        "forbidden");
    CHECK(refused ==
          R"({"id":"1","type":"response","error":{"code":"forbidden","message":"'dashboard' lacks the permission 'register' that register needs"}})");
    // Unknown actions are still unknown; the permission is checked before
    // the subsystem's presence, so a caller without it cannot probe which
    // subsystems exist (this server has no containers).
    c.ask(req("2", "no_such_action"), "unknown_action");
    c.ask(req("3", "get_service", R"({"name":"web"})"), "not_found");
    CHECK(c.ask(req("5", "container_create", R"({"image":"alpine"})"), "forbidden").find("containers.write") !=
          std::string::npos);

    client anon(srv, 2);  // no principal: access control off
    anon.ask(req("6", "container_list"), "unavailable");  // held, and absent
    anon.ask(
        req("4", "register",
            R"({"service":{"name":"web","instance_id":"web-1","endpoints":[{"name":"http","address":"127.0.0.1","port":80,"protocol":"http"}]}})"));
}
