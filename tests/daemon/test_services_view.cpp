// The read-only registry view's answers to hostile and odd targets, on a
// registry of the library's own (fake clock, in-memory store).
#include "http/services_view.hpp"

#include <registry/registry.hpp>
#include <registry/sync_wait.hpp>
#include <registry/testing/fake_clock.hpp>
#include <registry/testing/memory_store.hpp>

#include <doctest/doctest.h>

#include <string>

using registryd::answer_services_view;

namespace {

struct fixture {
    registry::testing::fake_clock clk;
    registry::testing::memory_store st;
    registry::registry reg{clk, st};

    fixture() {
        REQUIRE(registry::sync_wait(reg.open()));
        for (const char* id : {"a-1", "a-2", "b-1"}) {
            registry::registration r;
            r.service.name = std::string(id, 1);
            r.service.instance_id = id;
            REQUIRE(registry::sync_wait(reg.register_service(std::move(r))));
        }
    }

    registryd::view_answer get(std::string_view target, std::size_t max_page_items = 1000) {
        auto a = answer_services_view("GET", target, reg, max_page_items);
        REQUIRE(a);
        return *a;
    }
};

}  // namespace

TEST_CASE("services view: only /v1/services and what is below it") {
    fixture f;
    CHECK_FALSE(answer_services_view("GET", "/metrics", f.reg, 10));
    CHECK_FALSE(answer_services_view("GET", "/v1/servicesx", f.reg, 10));
    CHECK_FALSE(answer_services_view("GET", "/v1/service", f.reg, 10));
    CHECK(f.get("/v1/services").status == 200);
    CHECK(f.get("/v1/services/").status == 200);
    CHECK(f.get("/v1/services?").status == 200);
    CHECK(f.get("/v1/services/a/x").status == 404);
}

TEST_CASE("services view: truncated and bad percent-escapes are refused, not read past the end") {
    fixture f;
    for (const char* target : {"/v1/services?name=%", "/v1/services?name=%6", "/v1/services?name=a%g1",
                               "/v1/services/%", "/v1/services/a%2"}) {
        const auto a = f.get(target);
        INFO(target, ": ", a.body);
        CHECK(a.status == 400);
        CHECK(a.body.find("\"code\":\"invalid_request\"") != std::string::npos);
        CHECK(a.body.find("bad percent-encoding") != std::string::npos);
    }
    CHECK(f.get("/v1/services/%61").status == 200);  // "a"
}

TEST_CASE("services view: pages follow instance_id order and stop at the cap") {
    fixture f;
    const auto first = f.get("/v1/services", 2);
    CHECK(first.body.find("\"limit\":2") != std::string::npos);
    CHECK(first.body.find("\"after\":\"a-2\",\"remaining\":1") != std::string::npos);
    const auto last = f.get("/v1/services?after=a-2", 2);
    CHECK(last.body.find("\"instance_id\":\"b-1\"") != std::string::npos);
    CHECK(last.body.find("\"after\"") == std::string::npos);
    // After an id that is not there: the ones that sort after it.
    const auto between = f.get("/v1/services?after=a-10", 2);
    CHECK(between.body.find("\"instance_id\":\"a-1\"") == std::string::npos);
    CHECK(between.body.find("\"instance_id\":\"a-2\"") != std::string::npos);
    const auto beyond = f.get("/v1/services?after=zzz");
    CHECK(beyond.status == 200);
    CHECK(beyond.body.find("\"services\":[]") != std::string::npos);
}

TEST_CASE("services view: a repeated parameter, a long one quoted back only in part, HEAD") {
    fixture f;
    const auto twice = f.get("/v1/services?state=running&limit=1&state=running");
    CHECK(twice.status == 400);
    CHECK(twice.body.find("query parameter 'state' given twice") != std::string::npos);
    CHECK(f.get("/v1/services?&&limit=1&").status == 200);  // empty pairs are nothing
    const std::string long_key(5000, 'k');
    const auto a = f.get("/v1/services?" + long_key + "=1");
    CHECK(a.status == 400);
    CHECK(a.body.size() < 400);
    CHECK(a.body.find("...'") != std::string::npos);
    const auto method = answer_services_view("HEAD", "/v1/services", f.reg, 10);
    REQUIRE(method);
    CHECK(method->status == 405);
    CHECK(method->allow == "GET");
}
