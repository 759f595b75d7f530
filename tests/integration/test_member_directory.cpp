// The members of several registryd on one etcd (cluster/member_directory.hpp),
// against a real etcd: directories (each with a gateway of its own, as each
// registryd has) on an io_context run by the test. A record reads back as
// written; the cluster secret is made once; a published record is seen by
// every member, changes under the same lease and goes at once when withdrawn;
// a name held by another process is waited for, a lease lost is replaced;
// etcd stopped is unavailable.
#include "etcd_server.hpp"
#include "harness.hpp"
#include "io_driver.hpp"

#include "cluster/member_directory.hpp"
#include "engine/engine_http.hpp"
#include "store/base64.hpp"

#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>
#include <simdjson.h>

#include <algorithm>
#include <exception>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using it::outcome;
using registryd::member_directory;
using registryd::member_record;

namespace {

registryd::etcd_options member_options(const it::etcd_server& etcd, std::string prefix = "/members/") {
    registryd::etcd_options o;
    o.endpoints = {etcd.client_url()};
    o.prefix = std::move(prefix);
    o.dial_timeout = 500ms;
    o.request_timeout = 2000ms;
    return o;
}

using loop = it::io_loop;

std::shared_ptr<member_directory> directory(loop& l, const registryd::etcd_options& options, std::string member,
                                            std::chrono::seconds lease_ttl = 5s) {
    return std::make_shared<member_directory>(l.io, std::make_shared<registryd::etcd_gateway>(l.io, options),
                                              std::move(member), lease_ttl);
}

member_record record_of(std::string name, std::string url = "ws://127.0.0.1:7000/", std::uint64_t pid = 4242) {
    return member_record{name,
                         std::move(url),
                         {{"docker", 4}, {"podman", 8}},
                         "host-" + name,
                         pid,
                         {{"local." + name, "10.0.0.7", "/opt", "10.0.0.7", {}, 0},
                          {"web-1", "web-1.example", "/srv", "web-1.example", "deploy", 2222}}};
}

// members() of `d` until `ok` holds of what it answers.
template <typename Pred>
bool members_until(loop& l, member_directory& d, Pred ok, it::ms timeout) {
    const auto deadline = it::steady::now() + it::scaled(timeout);
    while (true) {
        auto all = l.await(d.members());
        if (all.ok() && ok(*all)) return true;
        if (it::steady::now() >= deadline) return false;
        l.run_for(100ms);
    }
}

std::string names(const std::vector<member_record>& all) {
    std::string s;
    for (const auto& r : all) s += r.name + "@" + r.url + " ";
    return s;
}

// A POST to etcd's gateway (what the test does to etcd besides the directories).
std::string etcd_post(loop& l, const it::etcd_server& etcd, const std::string& target, const std::string& body) {
    auto endpoint = registryd::engine_endpoint::parse("tcp://" + etcd.client_url().substr(7));
    REQUIRE(endpoint.ok());
    registryd::engine_http_client client(l.io, *endpoint);
    auto r = l.await(client.request(registryd::http_request{"POST", target, body, "application/json", false}));
    REQUIRE_MESSAGE(r.ok(), r.err().message);
    REQUIRE_MESSAGE(r->status == 200, r->body);
    return r->body;
}

// A key's create revision and lease, as etcd has them ("" when there is no such key).
struct stored {
    std::string create_revision, lease;
};

stored etcd_key(loop& l, const it::etcd_server& etcd, const std::string& key) {
    const std::string body = etcd_post(l, etcd, "/v3/kv/range", "{\"key\":\"" + registryd::base64_encode(key) + "\"}");
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    REQUIRE(parser.parse(body).get(doc) == simdjson::SUCCESS);
    simdjson::dom::array kvs;
    if (doc["kvs"].get(kvs) != simdjson::SUCCESS || kvs.size() == 0) return {};
    simdjson::dom::element kv = *kvs.begin();
    std::string_view created, lease;  // etcd's JSON leaves a key without a lease without "lease"
    REQUIRE(kv["create_revision"].get(created) == simdjson::SUCCESS);
    if (kv["lease"].get(lease) != simdjson::SUCCESS) lease = {};
    return {std::string(created), std::string(lease)};
}

}  // namespace

TEST_CASE("member directory: a record reads back as written, and a malformed record is refused naming the field") {
    const member_record r = record_of("a");
    const auto back = registryd::decode_member_record(registryd::encode_member_record(r));
    REQUIRE_MESSAGE(back.ok(), back.err().message);
    CHECK(*back == r);

    // The least a record has; an engine's capacity defaults to 8; fields it does not know are skipped.
    const auto least = registryd::decode_member_record(R"({"name":"m","engines":[{"name":"docker"}],"later":{"x":1}})");
    REQUIRE_MESSAGE(least.ok(), least.err().message);
    CHECK(least->name == "m");
    CHECK(least->url.empty());
    REQUIRE(least->engines.size() == 1);
    CHECK(least->engines[0].capacity == 8);

    // The bounds themselves are allowed.
    member_record big = record_of(std::string(1024, 'n'), "ws://" + std::string(1014, 'u') + "/");
    big.host = std::string(1024, 'h');
    big.engines.assign(256, member_record::engine{"docker", 1});
    big.targets.assign(256, member_record::target{std::string(1024, 't'), "a", "/", "h", {}, 65535});
    REQUIRE(big.url.size() == 1020);
    const auto big_back = registryd::decode_member_record(registryd::encode_member_record(big));
    REQUIRE_MESSAGE(big_back.ok(), big_back.err().message);
    CHECK(*big_back == big);

    std::string engines_257 = R"({"name":"m","engines":[)";
    for (int i = 0; i < 257; ++i) engines_257 += std::string(i ? "," : "") + R"({"name":"e"})";
    engines_257 += "]}";
    std::string targets_257 = R"({"name":"m","targets":[)";
    for (int i = 0; i < 257; ++i) targets_257 += std::string(i ? "," : "") + R"({"name":"t","prefix":"/","host":"h"})";
    targets_257 += "]}";
    const std::vector<std::pair<std::string, std::string>> malformed{
        {R"({"url":"ws://x/"})", "name: is required"},
        {R"({"name":""})", "name: is required"},
        {R"({"name":7})", "name: must be a string"},
        {R"({"name":"m","url":["ws://x/"]})", "url: must be a string"},
        {R"({"name":"m","engines":{}})", "engines: must be an array"},
        {R"({"name":"m","engines":["docker"]})", "engines[0]: must be an object"},
        {R"({"name":"m","engines":[{"name":"d"},{"capacity":1}]})", "engines[1].name: is required"},
        {R"({"name":"m","engines":[{"name":"d","capacity":-1}]})", "engines[0].capacity: must be a non-negative integer"},
        {R"({"name":"m","engines":[{"name":"d","capacity":0}]})", "engines[0].capacity: must be 1-10000"},
        {R"({"name":"m","engines":[{"name":"d","capacity":10001}]})", "engines[0].capacity: must be 1-10000"},
        {R"({"name":"m","pid":"12"})", "pid: must be a non-negative integer"},
        {R"({"name":"m","host":")" + std::string(1025, 'h') + R"("})", "host: must be at most 1024 bytes"},
        {R"({"name":")" + std::string(1025, 'n') + R"("})", "name: must be at most 1024 bytes"},
        {engines_257, "engines: must have at most 256 engines"},
        {R"({"name":"m","targets":{}})", "targets: must be an array"},
        {R"({"name":"m","targets":[{"prefix":"/opt","host":"h"}]})", "targets[0].name: is required"},
        {R"({"name":"m","targets":[{"name":"t","prefix":"opt","host":"h"}]})", "targets[0].prefix: must be an absolute path"},
        {R"({"name":"m","targets":[{"name":"t","prefix":"/opt"}]})", "targets[0].host: is required"},
        {R"({"name":"m","targets":[{"name":"t","prefix":"/opt","host":"h","ssh_port":70000}]})",
         "targets[0].ssh_port: must be 1-65535"},
        {targets_257, "targets: must have at most 256 targets"},
        {"[]", "must be an object"},
        {R"({"name":"m")", "not valid JSON"},
    };
    for (const auto& [json, problem] : malformed) {
        const auto refused = registryd::decode_member_record(json);
        INFO(json.substr(0, 120));
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.err().code == registry::errc::invalid_request);
        CHECK(refused.err().message == problem);
    }
}

TEST_CASE("member directory: the cluster secret is created once, and two directories read the same 64 hex characters") {
    it::etcd_server etcd;
    loop l;
    auto a = directory(l, member_options(etcd), "a");
    auto b = directory(l, member_options(etcd), "b");
    // Both ask at once: one makes it, the other reads it.
    auto from_a = l.start(a->cluster_secret());
    auto from_b = l.start(b->cluster_secret());
    REQUIRE(l.until([&] { return from_a->done && from_b->done; }, 15s));
    REQUIRE(from_a->value);
    REQUIRE(from_b->value);
    REQUIRE_MESSAGE(from_a->value->ok(), from_a->value->err().message);
    REQUIRE_MESSAGE(from_b->value->ok(), from_b->value->err().message);
    const std::string secret = **from_a->value;
    CHECK(**from_b->value == secret);
    CHECK(secret.size() == 64);
    CHECK(std::all_of(secret.begin(), secret.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }));
    // Made once: asked again, by a directory made later, the same.
    const std::string created = etcd_key(l, etcd, "/members/meta/cluster_secret").create_revision;
    auto c = directory(l, member_options(etcd), "c");
    const auto again = l.await(c->cluster_secret());
    REQUIRE(again.ok());
    CHECK(*again == secret);
    CHECK(etcd_key(l, etcd, "/members/meta/cluster_secret").create_revision == created);

    // What is stored there but is not a secret is refused, naming the key.
    etcd_post(l, etcd, "/v3/kv/put",
              "{\"key\":\"" + registryd::base64_encode("/bad-secret/meta/cluster_secret") + "\",\"value\":\"" +
                  registryd::base64_encode(std::string(64, 'X')) + "\"}");
    auto d = directory(l, member_options(etcd, "/bad-secret/"), "d");
    const auto bad = l.await(d->cluster_secret());
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.err().code == registry::errc::internal);
    CHECK(bad.err().message.find("/bad-secret/meta/cluster_secret") != std::string::npos);
}

TEST_CASE("member directory: a published record is seen by another directory, an update changes it under the same lease, and withdraw removes it at once") {
    it::etcd_server etcd;
    loop l;
    auto a = directory(l, member_options(etcd), "a");
    auto b = directory(l, member_options(etcd), "b");
    CHECK(l.await(b->members())->empty());
    CHECK_THROWS_AS(a->publish(record_of("b")), std::invalid_argument);  // not a's own

    a->publish(record_of("a"));
    REQUIRE(l.until([&] { return a->published(); }, 10s));
    auto seen = l.await(b->members());
    REQUIRE_MESSAGE(seen.ok(), seen.err().message);
    REQUIRE(seen->size() == 1);
    CHECK(seen->front() == record_of("a"));
    const stored first = etcd_key(l, etcd, "/members/meta/members/a");
    CHECK_FALSE(first.lease.empty());

    // Changed: the same key and lease, the new value.
    member_record changed = record_of("a", "wss://10.0.0.1:7443/");
    changed.engines.push_back({"gpu", 2});
    a->publish(changed);
    CHECK(members_until(l, *b, [&](const auto& all) { return all.size() == 1 && all.front() == changed; }, 10s));
    const stored second = etcd_key(l, etcd, "/members/meta/members/a");
    CHECK(second.create_revision == first.create_revision);
    CHECK(second.lease == first.lease);

    // Kept past its TTL (5 s) by its renewals.
    b->publish(record_of("b", "ws://127.0.0.1:7002/"));
    l.run_for(6s);
    CHECK(a->published());
    auto both = l.await(a->members());
    REQUIRE(both.ok());
    CHECK(names(*both) == "a@wss://10.0.0.1:7443/ b@ws://127.0.0.1:7002/ ");

    // A record that does not decode is skipped.
    etcd_post(l, etcd, "/v3/kv/put",
              "{\"key\":\"" + registryd::base64_encode("/members/meta/members/junk") + "\",\"value\":\"" +
                  registryd::base64_encode("{\"name\":3}") + "\"}");
    auto with_junk = l.await(b->members());
    REQUIRE(with_junk.ok());
    CHECK(names(*with_junk) == "a@wss://10.0.0.1:7443/ b@ws://127.0.0.1:7002/ ");

    // Withdrawn: gone at once, for every member.
    l.await(a->withdraw());
    CHECK_FALSE(a->published());
    auto after = l.await(b->members());
    REQUIRE(after.ok());
    CHECK(names(*after) == "b@ws://127.0.0.1:7002/ ");
    CHECK(etcd_key(l, etcd, "/members/meta/members/a").create_revision.empty());
    l.await(a->withdraw());  // again: nothing

    b->stop();
}

TEST_CASE("member directory: a second directory with the same name waits while the first holds it, and takes it once the first withdraws or its lease runs out after stop") {
    it::etcd_server etcd;
    loop l;
    auto first = directory(l, member_options(etcd), "same", 2s);
    first->publish(record_of("same", "ws://127.0.0.1:7001/", 1));
    REQUIRE(l.until([&] { return first->published(); }, 10s));

    auto second = directory(l, member_options(etcd), "same", 2s);
    second->publish(record_of("same", "ws://127.0.0.1:7002/", 2));
    // Longer than the TTL: the first keeps its lease alive, the second waits.
    l.run_for(3500ms);
    CHECK(first->published());
    CHECK_FALSE(second->published());
    CHECK(members_until(l, *second, [](const auto& all) { return all.size() == 1 && all.front().pid == 1; }, 1s));

    // Withdrawn: the second takes it within its next look (every 500 ms).
    l.await(first->withdraw());
    const auto withdrawn = it::steady::now();
    REQUIRE(l.until([&] { return second->published(); }, 5s));
    const auto took = std::chrono::duration_cast<it::ms>(it::steady::now() - withdrawn);
    MESSAGE("taken " << took.count() << " ms after the first withdrew");
    CHECK(took < it::scaled(1500ms));
    CHECK(members_until(l, *first, [](const auto& all) { return all.size() == 1 && all.front().pid == 2; }, 1s));

    // Stopped without a withdraw (as a kill -9 would): the third takes it once the lease runs out.
    second->stop();
    CHECK_FALSE(second->published());
    const auto stopped = it::steady::now();
    auto third = directory(l, member_options(etcd), "same", 2s);
    third->publish(record_of("same", "ws://127.0.0.1:7003/", 3));
    REQUIRE(l.until([&] { return third->published(); }, 10s));
    const auto ran_out = std::chrono::duration_cast<it::ms>(it::steady::now() - stopped);
    MESSAGE("taken " << ran_out.count() << " ms after the holder stopped renewing (TTL 2 s)");
    CHECK(ran_out >= 1000ms);  // renewed at most a third of the TTL before the stop
    CHECK(ran_out < it::scaled(5000ms));
    CHECK(members_until(l, *first, [](const auto& all) { return all.size() == 1 && all.front().pid == 3; }, 1s));

    third->stop();
}

TEST_CASE("member directory: members() with etcd stopped answers unavailable within the request timeout") {
    it::etcd_server etcd;
    loop l;
    auto d = directory(l, member_options(etcd), "a");
    REQUIRE(l.await(d->members()).ok());

    etcd.stop();
    const auto t0 = it::steady::now();
    const auto r = l.await(d->members(), 20s);
    const auto took = it::steady::now() - t0;
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == registry::errc::unavailable);
    CHECK(r.err().message.find("etcd") != std::string::npos);
    CHECK(took < it::scaled(5000ms));  // dial timeout 500 ms, request timeout 2 s
    MESSAGE("members() with etcd stopped: " << r.err().message);
    const auto secret = l.await(d->cluster_secret(), 20s);
    REQUIRE_FALSE(secret.ok());
    CHECK(secret.err().code == registry::errc::unavailable);
}

TEST_CASE("member directory: publish with etcd stopped keeps trying, and publishes once etcd is back") {
    it::etcd_server etcd;
    loop l;
    auto d = directory(l, member_options(etcd), "a");
    etcd.stop();
    d->publish(record_of("a"));
    l.run_for(1500ms);
    CHECK_FALSE(d->published());
    etcd.start();
    REQUIRE(l.until([&] { return d->published(); }, 15s));
    auto other = directory(l, member_options(etcd), "b");
    CHECK(members_until(l, *other, [](const auto& all) { return all.size() == 1 && all.front() == record_of("a"); }, 5s));
    l.await(d->withdraw());
}

TEST_CASE("member directory: a record whose lease etcd revoked is published again, under a new lease") {
    it::etcd_server etcd;
    loop l;
    auto d = directory(l, member_options(etcd), "a", 2s);
    d->publish(record_of("a"));
    REQUIRE(l.until([&] { return d->published(); }, 10s));
    const stored before = etcd_key(l, etcd, "/members/meta/members/a");
    REQUIRE_FALSE(before.lease.empty());
    // As an operator's `etcdctl lease revoke` would, or etcd losing it.
    etcd_post(l, etcd, "/v3/lease/revoke", "{\"ID\":\"" + before.lease + "\"}");
    CHECK(etcd_key(l, etcd, "/members/meta/members/a").create_revision.empty());
    // Found at the next renewal (every third of the TTL).
    stored after;
    REQUIRE(l.until(
        [&] {
            after = etcd_key(l, etcd, "/members/meta/members/a");
            return !after.create_revision.empty();
        },
        5s));
    CHECK(after.lease != before.lease);
    CHECK(d->published());
    auto other = directory(l, member_options(etcd), "b");
    CHECK(members_until(l, *other, [](const auto& all) { return all.size() == 1 && all.front() == record_of("a"); }, 1s));
    l.await(d->withdraw());
}
