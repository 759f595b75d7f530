// Ownership through protocol::connection, with several principals: what one
// identity creates (an instance's lease, a container, an execution, an upload,
// a deployment) another may not touch nor, for leases, see the id of; an
// admin may; service-name scopes; per-identity quotas; ids nobody can guess.
#include "deployer_test_support.hpp"
#include "protocol_test_support.hpp"
#include "repl_fake_engine.hpp"

#include "codec/container_record.hpp"
#include "codec/deployment_record.hpp"
#include "codec/service_record.hpp"

#include <registry/container_manager.hpp>
#include <registry/deploy/deployer.hpp>
#include <registry/deploy/package_uploads.hpp>
#include <registry/protocol/containers.hpp>
#include <registry/protocol/deploy.hpp>
#include <registry/protocol/repl.hpp>
#include <registry/repl/executor.hpp>
#include <registry/testing/fake_random.hpp>
#include <registry/testing/memory_engine.hpp>
#include <registry/testing/memory_upload_files.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<const protocol::principal> as(std::string name, bool admin = false,
                                              std::vector<std::string> services = {}) {
    return std::make_shared<const protocol::principal>(
        protocol::principal{identity{std::move(name), admin, std::move(services)}, protocol::permission_set::all()});
}

bool has(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

std::string error_message(const std::string& response) {
    const auto at = response.find(R"("message":")");
    REQUIRE(at != std::string::npos);
    const auto begin = at + 11;
    return response.substr(begin, response.find('"', begin) - begin);
}

// The string member `key` of a response.
std::string member(const std::string& response, std::string_view key) {
    const std::string quoted = "\"" + std::string(key) + "\":\"";
    const auto at = response.find(quoted);
    REQUIRE(at != std::string::npos);
    const auto begin = at + quoted.size();
    return response.substr(begin, response.find('"', begin) - begin);
}

// `prefix`, then 32 lowercase hex digits: 128 bits.
bool random_id(const std::string& id, std::string_view prefix) {
    if (!id.starts_with(prefix) || id.size() != prefix.size() + 32) return false;
    return std::all_of(id.begin() + static_cast<std::ptrdiff_t>(prefix.size()), id.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string service(std::string_view name, std::string_view instance) {
    return R"({"name":")" + std::string(name) + R"(","instance_id":")" + std::string(instance) +
           R"(","endpoints":[{"name":"http","address":"127.0.0.1","port":80,"protocol":"http"}]})";
}

void shut_down(deploy::deployer& d) {
    async_scope stopping;
    stopping.spawn(d.shutdown());
    CHECK(stopping.active() == 0);  // the health loops end at once on a fake clock
}

struct registry_fixture {
    testing::fake_clock clk;
    testing::memory_store st;
    registry::registry reg{clk, st};
    protocol::server srv{reg};
    std::stop_source stop;
    async_scope runner;

    registry_fixture() {
        REQUIRE(run_now(reg.open()).ok());
        runner.spawn(reg.run(stop.get_token()));
    }
    ~registry_fixture() {
        stop.request_stop();
        CHECK(runner.active() == 0);
    }
};

}  // namespace

TEST_CASE("ownership: a lease belongs to its holder, another identity can neither use nor see its id") {
    registry_fixture f;
    client alice(f.srv, 1, {}, as("alice"));
    client bob(f.srv, 2, {}, as("bob"));
    client root(f.srv, 3, {}, as("root", true));

    const auto subscribed = bob.send(req("s", "subscribe", R"({"events":["service_state_changed","service_deregistered"]})"));
    REQUIRE(subscribed.size() == 2);  // the response, the (empty) snapshot
    alice.ask(req("s", "subscribe", R"({"events":["service_state_changed"],"snapshot":false})"));

    CHECK(has(alice.ask(req("1", "register", R"({"service":)" + service("web", "web-1") + "}")), R"("lease_id":1,)"));

    // A lease id alone grants nothing.
    const std::string not_yours = "it belongs to another identity";
    CHECK(error_message(bob.ask(req("2", "keepalive", R"({"lease_id":1})"), "forbidden")) ==
          "'bob' may not keepalive instance 'web-1': " + not_yours);
    CHECK(error_message(bob.ask(req("3", "register", R"({"service":)" + service("web", "web-1") + R"(,"lease_id":1})"),
                                "forbidden")) == "'bob' may not re-register instance 'web-1': " + not_yours);
    CHECK(error_message(bob.ask(req("4", "deregister", R"({"instance_id":"web-1"})"), "forbidden")) ==
          "'bob' may not deregister instance 'web-1': " + not_yours);
    CHECK(error_message(bob.ask(req("5", "set_state", R"({"instance_id":"web-1","state":"running"})"), "forbidden")) ==
          "'bob' may not set the state of instance 'web-1': " + not_yours);
    bob.ask(req("6", "register", R"({"service":)" + service("web", "web-1") + "}"), "conflict");  // as before

    // Its holder sees the id, others the lease without it, and who holds it.
    CHECK(has(alice.ask(req("7", "get_service", R"({"instance_id":"web-1"})")), R"("lease":{"id":1,"ttl_seconds":30)"));
    const std::string seen = bob.ask(req("8", "get_service", R"({"instance_id":"web-1"})"));
    CHECK(has(seen, R"("lease":{"ttl_seconds":30,)"));
    CHECK(has(seen, R"("session_bound":false,"holder":"alice"})"));
    const std::string listed = bob.ask(req("9", "list_services", "{}"));
    CHECK(has(listed, R"("instance_id":"web-1")"));
    CHECK_FALSE(has(listed, R"("id":1)"));
    CHECK(has(root.ask(req("10", "list_services", "{}")), R"("lease":{"id":1,)"));

    // The holder keeps it and changes it; subscribers see the change, the id only if theirs.
    CHECK(has(alice.ask(req("11", "keepalive", R"({"lease_id":1})")), R"("lease_id":1,)"));
    const auto alices = alice.send(req("12", "set_state", R"({"instance_id":"web-1","state":"starting"})"));
    auto bobs = bob.out.take();
    REQUIRE(bobs.size() == 1);
    CHECK(has(bobs[0], R"("event":"service_state_changed")"));
    CHECK(has(bobs[0], R"("lease":{"ttl_seconds":30,)"));
    const auto own_event = std::find_if(alices.begin(), alices.end(),
                                        [](const std::string& f) { return has(f, R"("event":"service_state_changed")"); });
    REQUIRE(own_event != alices.end());
    CHECK(has(*own_event, R"("lease":{"id":1,)"));

    // A new subscriber's snapshot hides it too.
    client carol(f.srv, 4, {}, as("carol"));
    const auto snapshot = carol.send(req("s", "subscribe", "{}"));
    REQUIRE(snapshot.size() == 2);
    CHECK(has(snapshot[1], R"("event":"registry_loaded")"));
    CHECK(has(snapshot[1], R"("instance_id":"web-1")"));
    CHECK_FALSE(has(snapshot[1], R"("id":1)"));

    // An admin may act on any lease.
    CHECK(has(root.ask(req("13", "keepalive", R"({"lease_id":1})")), R"("lease_id":1,)"));
    root.ask(req("14", "deregister", R"({"instance_id":"web-1"})"));
    bobs = bob.out.take();
    REQUIRE(bobs.size() == 1);
    CHECK(has(bobs[0], R"("event":"service_deregistered")"));
    CHECK_FALSE(has(bobs[0], R"("id":1)"));

    // lease_expired names the lease to its holder only.
    carol.out.take();
    alice.ask(req("15", "register", R"({"service":)" + service("web", "web-2") + R"(,"ttl_seconds":1})"));
    client dave(f.srv, 5, {}, as("dave"));
    dave.ask(req("s", "subscribe", R"({"events":["lease_expired"],"snapshot":false})"));
    client holder(f.srv, 6, {}, as("alice"));
    holder.ask(req("s", "subscribe", R"({"events":["lease_expired"],"snapshot":false})"));
    f.clk.advance(2s);
    const auto expired = dave.out.take();
    REQUIRE(expired.size() == 1);
    CHECK(has(expired[0], R"("data":{"instance_id":"web-2")"));
    const auto own = holder.out.take();
    REQUIRE(own.size() == 1);
    CHECK(has(own[0], R"("data":{"lease_id":)"));
}

TEST_CASE("ownership: service-name scopes hold for register, keepalive, deregister and set_state") {
    registry_fixture f;
    client ci(f.srv, 1, {}, as("ci", false, {"web-*"}));
    client anon(f.srv, 2);  // access control off: anonymous, an admin

    CHECK(error_message(ci.ask(req("1", "register", R"({"service":)" + service("payments", "payments-1") + "}"),
                               "forbidden")) ==
          "'ci' may not register service 'payments': it is outside the services of 'ci'");
    ci.ask(req("2", "register", R"({"service":)" + service("web-frontend", "wf-1") + "}"));
    // A scope is checked on the instance's name, whoever holds it.
    anon.ask(req("3", "register", R"({"service":)" + service("payments", "payments-1") + "}"));
    CHECK(error_message(ci.ask(req("4", "deregister", R"({"instance_id":"payments-1"})"), "forbidden")) ==
          "'ci' may not deregister service 'payments': it is outside the services of 'ci'");
    ci.ask(req("5", "set_state", R"({"instance_id":"payments-1","state":"running"})"), "forbidden");
    ci.ask(req("6", "keepalive", R"({"lease_id":2})"), "forbidden");
    // Anonymous (access control off) acts on everything, as before owners.
    anon.ask(req("7", "deregister", R"({"instance_id":"wf-1"})"));
}

TEST_CASE("ownership: records keep their owners, and records without one belong to anonymous") {
    service_instance s;
    s.name = "web";
    s.instance_id = "web-1";
    s.lease = lease{7, 30s, {}, false, "alice"};
    auto back = detail::decode_service_record(detail::encode_service_record(s));
    REQUIRE(back.ok());
    CHECK(back->lease.holder == "alice");
    s.lease.holder = "anonymous";
    const std::string old_form = detail::encode_service_record(s);
    CHECK_FALSE(has(old_form, "holder"));
    back = detail::decode_service_record(old_form);
    REQUIRE(back.ok());
    CHECK(back->lease.holder == "anonymous");

    managed_container c;
    c.lease_id = 1;
    c.container_id = "a-c1";
    c.owner = "alice";
    auto ct = detail::decode_container_record(detail::encode_container_record(c));
    REQUIRE(ct.ok());
    CHECK(ct->owner == "alice");
    ct = detail::decode_container_record(
        R"({"lease_id":1,"container_id":"a-c1","name":"job-1","image":"img","engine":"a","state":"exited",)"
        R"("ttl_seconds":60,"created_at_ms":1700000000000,"expires_at_ms":1700000060000})");
    REQUIRE(ct.ok());
    CHECK(ct->owner == "anonymous");

    detail::deployment_record d{"demo.fake", "fake", "/srv/demo", "/srv/demo-1", {}, "alice"};
    d.manifest.name = "demo";
    d.manifest.version = "1";
    auto dep = detail::decode_deployment_record(detail::encode_deployment_record(d));
    REQUIRE(dep.ok());
    CHECK(dep->owner == "alice");
    d.owner = "anonymous";
    dep = detail::decode_deployment_record(detail::encode_deployment_record(d));
    REQUIRE(dep.ok());
    CHECK(dep->owner == "anonymous");
}

TEST_CASE("ownership: only a container's owner, or an admin, stops, extends or removes it") {
    testing::fake_clock clk;
    testing::memory_store st;
    testing::memory_engine a{"a"};
    registry::registry reg{clk, st};
    REQUIRE(run_now(reg.open()).ok());
    container_manager_options o;
    o.instance_id = "reg-1";
    std::optional<container_manager> mgr;
    mgr.emplace(reg, clk, st, std::vector<container_node>{{"a", "mem://a", &a, 4}}, o);
    REQUIRE(run_now(mgr->open()));
    std::stop_source stop;
    async_scope runner;
    runner.spawn(mgr->run(stop.get_token()));
    {
        protocol::server srv{reg};
        protocol::add_container_actions(srv, *mgr);
        client alice(srv, 1, {}, as("alice"));
        client bob(srv, 2, {}, as("bob"));
        client root(srv, 3, {}, as("root", true));

        const std::string made = alice.ask(req("1", "container_create", R"({"image":"img","ttl_seconds":60})"));
        const std::string id = member(made, "container_id");
        CHECK(has(made, R"("owner":"alice")"));
        CHECK(has(bob.ask(req("2", "container_list", "{}")), R"("owner":"alice")"));

        CHECK(error_message(bob.ask(req("3", "container_stop", R"({"container_id":")" + id + R"("})"), "forbidden")) ==
              "'bob' may not stop container '" + id + "': it belongs to another identity");
        CHECK(error_message(bob.ask(req("4", "container_extend", R"({"container_id":")" + id + R"(","ttl_seconds":600})"),
                                    "forbidden")) == "'bob' may not extend container '" + id + "': it belongs to another identity");
        CHECK(error_message(bob.ask(req("5", "container_remove", R"({"container_id":")" + id + R"(","force":true})"),
                                    "forbidden")) == "'bob' may not remove container '" + id + "': it belongs to another identity");
        CHECK(mgr->find(id)->state == managed_state::running);  // untouched
        CHECK(mgr->find(id)->expires_at == clk.now() + 60s);

        alice.ask(req("6", "container_extend", R"({"container_id":")" + id + R"(","ttl_seconds":120})"));
        root.ask(req("7", "container_stop", R"({"container_id":")" + id + R"("})"));
        root.ask(req("8", "container_remove", R"({"container_id":")" + id + R"("})"));
        CHECK(mgr->find(id) == nullptr);
    }
    stop.request_stop();
    CHECK(runner.active() == 0);
}

TEST_CASE("ownership: uploads are their owner's, with unguessable ids and a per-identity quota") {
    testing::fake_clock clk;
    testing::memory_store st;
    registry::registry reg{clk, st};
    REQUIRE(run_now(reg.open()).ok());
    testing::memory_upload_files files;
    testing::fake_random random;
    deploy::upload_options o;
    o.max_uploads = 8;
    o.max_per_identity = 2;
    deploy::package_uploads uploads{clk, files, random, o};
    protocol::server srv{reg};
    protocol::add_deploy_actions(srv, nullptr, &uploads);
    client alice(srv, 1, {}, as("alice"));
    client bob(srv, 2, {}, as("bob"));
    client root(srv, 3, {}, as("root", true));
    client anon(srv, 4);

    const std::string content = "abc";
    const std::string begin = req("b", "package_upload_begin", R"({"size":3,"sha256":")" + testing::fake_digest(content) + R"("})");
    const std::string first = member(alice.ask(begin), "upload_id");
    const std::string second = member(alice.ask(begin), "upload_id");
    CHECK(random_id(first, "up-"));
    CHECK(random_id(second, "up-"));
    CHECK(first != second);
    CHECK(has(alice.ask(req("s", "package_upload_status", R"({"upload_id":")" + first + R"("})")), R"("owner":"alice")"));

    // One identity cannot take every slot; the others still get theirs.
    CHECK(error_message(alice.ask(begin, "limit_exceeded")) ==
          "quota uploads_per_identity: 'alice' holds its maximum of 2 uploads in progress; finish or abandon one");
    bob.ask(begin);
    for (int i = 0; i < 3; ++i) anon.ask(begin);  // admins (anonymous is one) only count toward max_uploads

    // Nobody else continues, queries or deploys alice's upload; a bad chunk of theirs cannot delete it.
    const std::string chunk = req("c", "package_upload_chunk", R"({"upload_id":")" + first + R"(","offset":0,"data":"eHl6"})");
    CHECK(error_message(bob.ask(chunk, "forbidden")) ==
          "'bob' may not continue upload '" + first + "': it belongs to another identity");
    bob.ask(req("s", "package_upload_status", R"({"upload_id":")" + first + R"("})"), "forbidden");
    auto claimed = uploads.claim(first, identity{"bob", false, {}});
    REQUIRE_FALSE(claimed.ok());
    CHECK(claimed.err().code == errc::forbidden);
    CHECK(has(root.ask(req("s", "package_upload_status", R"({"upload_id":")" + first + R"("})")), R"("received":0)"));
    alice.send(req("c", "package_upload_chunk", R"({"upload_id":")" + first + R"(","offset":0,"data":"YWJj"})"));
    CHECK(uploads.status(first).ok());
    CHECK(uploads.status(first)->complete);
}

TEST_CASE("ownership: executions are their owner's, with unguessable ids, per-identity keys and a quota") {
    testing::fake_clock clk;
    testing::memory_store st;
    registry::registry reg{clk, st};
    REQUIRE(run_now(reg.open()).ok());
    fake_repl_engine engine;
    testing::fake_random random;
    repl::language sh;
    sh.name = "sh";
    sh.image = "localhost/registry-busybox:latest";
    sh.source_file = "main.sh";
    sh.run = {"sh", "{source}"};
    sh.defaults = repl::limits{5000ms, 1000, 64 << 20, 32, 500, false};
    sh.maximum = sh.defaults;
    repl::executor_options o;
    o.max_queue = 8;
    o.max_concurrent_per_identity = 2;
    std::optional<repl::executor> exec;
    exec.emplace(clk, random, std::vector<repl::engine_slot>{{"local", &engine, 1}}, std::vector<repl::language>{sh}, o,
                 nullptr);
    std::stop_source stop;
    async_scope runner;
    runner.spawn(exec->run(stop.get_token()));
    {
        protocol::server srv{reg};
        protocol::add_repl_actions(srv, *exec);
        client alice(srv, 1, {}, as("alice"));
        client bob(srv, 2, {}, as("bob"));
        client root(srv, 3, {}, as("root", true));

        const std::string run = R"({"language":"sh","code":"echo hi","idempotency_key":"k-1"})";
        const std::string first = member(alice.ask(req("1", "repl_execute", run)), "execution_id");
        CHECK(random_id(first, "x"));
        // Another identity's same key is another execution: keys are per identity.
        const auto bobs = bob.send(req("2", "repl_execute", run));
        REQUIRE(!bobs.empty());
        const std::string second = member(bobs[0], "execution_id");
        CHECK(has(bobs[0], R"("created":true)"));
        CHECK(random_id(second, "x"));
        CHECK(second != first);

        CHECK(error_message(bob.ask(req("3", "repl_cancel", R"({"execution_id":")" + first + R"("})"), "forbidden")) ==
              "'bob' may not cancel execution '" + first + "': it belongs to another identity");
        CHECK(exec->running() == 1);

        // At most two queued or running per identity.
        const auto queued = alice.send(req("4", "repl_execute", R"({"language":"sh","code":"echo 2"})"));
        REQUIRE(!queued.empty());
        const std::string third = member(queued[0], "execution_id");
        CHECK(error_message(alice.ask(req("5", "repl_execute", R"({"language":"sh","code":"echo 3"})"), "limit_exceeded")) ==
              "quota executions_per_identity: 'alice' has its maximum of 2 executions queued or running");
        // A finished one frees its place.
        alice.send(req("6", "repl_cancel", R"({"execution_id":")" + third + R"("})"));
        alice.send(req("7", "repl_execute", R"({"language":"sh","code":"echo 4"})"));
        // An admin cancels anyone's.
        root.send(req("8", "repl_cancel", R"({"execution_id":")" + second + R"("})"));
        bob.out.take();
    }
    stop.request_stop();
    CHECK(runner.active() == 0);
}

TEST_CASE("ownership: a deployment is its deployer's, across a restart, scopes hold for deploys") {
    testing::fake_clock clock;
    testing::memory_store store;
    scripted_target target;
    manifest_unpacker unpacker;
    unpacker.manifest.name = "demo";
    unpacker.manifest.version = "1.0.0";
    unpacker.manifest.ports.push_back({"http", 8080, "http"});
    const std::string deploy = req("d", "deploy_package", R"({"path":"/tmp/demo-1.0.0.tar.gz","target":"fake"})");
    const std::string not_yours = "': it belongs to another identity";
    auto last = [](const std::vector<std::string>& frames) { return frames.empty() ? std::string() : frames.back(); };
    {
        registry::registry reg{clock, store};
        REQUIRE(run_now(reg.open()).ok());
        deploy::deployer d{reg, clock, store, unpacker, deploy::deployer_options{}};
        d.add_target(target);
        protocol::server srv{reg};
        protocol::add_deploy_actions(srv, &d, nullptr);
        client alice(srv, 1, {}, as("alice"));
        client bob(srv, 2, {}, as("bob"));
        client ci(srv, 3, {}, as("ci", false, {"web-*"}));

        CHECK(error_message(last(ci.send(deploy, "forbidden"))) ==
              "'ci' may not deploy service 'demo': it is outside the services of 'ci'");
        CHECK(has(last(alice.send(deploy)), R"("instance_id":"demo.fake")"));
        // The instance's lease is alice's: she sees its id, bob does not.
        CHECK(reg.find("demo.fake")->lease.holder == "alice");

        CHECK(error_message(last(bob.send(deploy, "forbidden"))) == "'bob' may not redeploy deployment 'demo.fake" + not_yours);
        CHECK(error_message(bob.ask(req("u", "undeploy", R"({"instance_id":"demo.fake"})"), "forbidden")) ==
              "'bob' may not undeploy deployment 'demo.fake" + not_yours);
        CHECK(error_message(bob.ask(req("a", "service_action", R"({"instance_id":"demo.fake","action":"stop"})"),
                                    "forbidden")) == "'bob' may not run a service action on deployment 'demo.fake" + not_yours);
        bob.ask(req("k", "deregister", R"({"instance_id":"demo.fake"})"), "forbidden");
        CHECK(reg.find("demo.fake")->state == service_state::running);
        shut_down(d);
    }
    // A restarted deployer reads the owner back from its record.
    registry::registry reg{clock, store};
    REQUIRE(run_now(reg.open()).ok());
    deploy::deployer d{reg, clock, store, unpacker, deploy::deployer_options{}};
    d.add_target(target);
    REQUIRE(run_now(d.open()).ok());
    protocol::server srv{reg};
    protocol::add_deploy_actions(srv, &d, nullptr);
    client alice(srv, 1, {}, as("alice"));
    client bob(srv, 2, {}, as("bob"));
    bob.ask(req("u", "undeploy", R"({"instance_id":"demo.fake"})"), "forbidden");
    last(alice.send(req("u", "undeploy", R"({"instance_id":"demo.fake"})")));
    CHECK(reg.find("demo.fake") == nullptr);
    shut_down(d);
}
