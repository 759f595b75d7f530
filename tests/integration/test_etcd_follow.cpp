// A standby's reads on etcd, against a real etcd: the store port itself (no
// registryd) on an io_context run by the test. A writer port commits
// batches; a standby port loads them pinned to one etcd revision, follows
// every later transaction through an etcd watch (also across an etcd
// restart), and its read barrier waits until it has seen what the writer
// committed.
#include "etcd_server.hpp"
#include "harness.hpp"
#include "io_driver.hpp"

#include "engine/engine_http.hpp"
#include "store/base64.hpp"
#include "store/etcd_store_port.hpp"
#include "store/etcd_watch.hpp"

#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>
#include <simdjson.h>

#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using registry::store_batch;
using registry::store_mutation;
using registryd::etcd_txn_seen;
using it::outcome;

namespace {

registryd::etcd_options follow_options(const it::etcd_server& etcd) {
    registryd::etcd_options o;
    o.endpoints = {etcd.client_url()};
    o.prefix = "/follow/";
    o.dial_timeout = 500ms;
    o.request_timeout = 2000ms;
    return o;
}

// The store ports' commits, driven like any task.
struct loop : it::io_loop {
    void commit(registryd::etcd_store_port& port, store_batch batch) { await(port.commit(std::move(batch))); }
};

store_batch batch(std::uint64_t revision, std::vector<store_mutation> mutations) {
    return store_batch{revision, std::move(mutations)};
}

// What the standby should see of a batch: its mutations once per key, in key
// order (one etcd txn puts each key once, sorted), meta/ keys left out.
std::vector<store_mutation> expected_of(const store_batch& b) {
    std::map<std::string, std::optional<std::string>> by_key;
    for (const auto& m : b.mutations) {
        if (!m.key.starts_with("meta/")) by_key[m.key] = m.value;
    }
    std::vector<store_mutation> out;
    for (auto& [k, v] : by_key) out.push_back({k, v});
    return out;
}

std::string describe(const std::vector<store_mutation>& ms) {
    std::string s;
    for (const auto& m : ms) s += m.key + "=" + (m.value ? "'" + *m.value + "'" : "<deleted>") + " ";
    return s;
}

void check_txn(const etcd_txn_seen& seen, std::uint64_t revision, const std::vector<store_mutation>& expected) {
    CHECK(seen.revision == revision);
    CHECK_MESSAGE(describe(seen.mutations) == describe(expected), "at etcd revision " << seen.revision);
}

// A standby port following from `after`, recording what it is handed.
struct follower {
    std::vector<etcd_txn_seen> seen;
    std::vector<std::string> lost;

    void follow(registryd::etcd_store_port& port, std::uint64_t after) {
        port.follow(after, [this](etcd_txn_seen t) { seen.push_back(std::move(t)); },
                    [this](std::string why) { lost.push_back(std::move(why)); });
    }
};

// A POST to etcd's gateway (what the test does to etcd besides the ports).
std::string etcd_post(loop& l, const it::etcd_server& etcd, const std::string& target, const std::string& body) {
    auto endpoint = registryd::engine_endpoint::parse("tcp://" + etcd.client_url().substr(7));
    REQUIRE(endpoint.ok());
    registryd::engine_http_client client(l.io, *endpoint);
    auto r = l.await(client.request(registryd::http_request{"POST", target, body, "application/json", false}));
    REQUIRE_MESSAGE(r.ok(), r.err().message);
    REQUIRE_MESSAGE(r->status == 200, r->body);
    return r->body;
}

// etcd's current revision (of the whole keyspace).
std::uint64_t etcd_revision(loop& l, const it::etcd_server& etcd) {
    const std::string body = etcd_post(l, etcd, "/v3/kv/range", "{\"key\":\"" + registryd::base64_encode("/none") + "\"}");
    const auto at = body.find("\"revision\":\"");
    REQUIRE(at != std::string::npos);
    return std::stoull(body.substr(at + 12));
}

}  // namespace

TEST_CASE("etcd follow: a pinned standby loads one snapshot and then gets every later transaction once, in order, meta keys left out") {
    it::etcd_server etcd;
    loop l;
    registryd::etcd_store_port writer(l.io, follow_options(etcd));
    registryd::etcd_store_port standby(l.io, follow_options(etcd));

    l.commit(writer, batch(1, {{"svc/a", "a1"}, {"log/1", "one"}}));
    l.commit(writer, batch(2, {{"svc/b", "b1"}}));

    standby.pin_loads();
    CHECK(standby.pinned_revision() == 0);
    std::vector<std::string> services;
    CHECK(l.await(standby.load("svc/", [&](std::string_view k, std::string_view v) {
        services.push_back(std::string(k) + "=" + std::string(v));
    })) == 2);
    const std::uint64_t pinned = standby.pinned_revision();
    CHECK(pinned == etcd_revision(l, etcd));
    CHECK(services == std::vector<std::string>{"svc/a=a1", "svc/b=b1"});

    // A commit between two loads of the standby is in neither.
    const store_batch third = batch(3, {{"log/2", "two"}, {"svc/a", "a2"}});
    l.commit(writer, third);
    std::vector<std::string> logs;
    CHECK(l.await(standby.load("log/", [&](std::string_view k, std::string_view v) {
        logs.push_back(std::string(k) + "=" + std::string(v));
    })) == 2);  // the registry's revision at the pinned etcd revision
    CHECK(logs == std::vector<std::string>{"log/1=one"});
    CHECK(standby.pinned_revision() == pinned);

    follower f;
    f.follow(standby, pinned);
    const store_batch fourth = batch(4, {{"svc/b", std::nullopt}, {"log/3", ""}});  // a delete, an empty value
    const store_batch fifth = batch(5, {{"meta/note", "only meta"}});               // nothing for the standby
    const store_batch sixth = batch(6, {{"svc/c", "c1"}, {"meta/note", "again"}, {"log/4", "four"}});
    l.commit(writer, fourth);
    l.commit(writer, fifth);
    l.commit(writer, sixth);

    REQUIRE(l.until([&] { return f.seen.size() >= 3; }, 10s));
    l.run_for(500ms);  // nothing more comes
    REQUIRE(f.seen.size() == 3);
    CHECK(f.lost.empty());
    // One etcd revision per commit; the meta-only one (pinned + 3) is not handed over.
    check_txn(f.seen[0], pinned + 1, expected_of(third));
    check_txn(f.seen[1], pinned + 2, expected_of(fourth));
    check_txn(f.seen[2], pinned + 4, expected_of(sixth));
    CHECK(describe(f.seen[1].mutations) == "log/3='' svc/b=<deleted> ");

    standby.stop();
    writer.stop();
}

TEST_CASE("etcd follow: etcd stopped and started again mid-stream: following resumes with nothing lost or repeated") {
    it::etcd_server etcd;
    loop l;
    registryd::etcd_store_port writer(l.io, follow_options(etcd));
    registryd::etcd_store_port standby(l.io, follow_options(etcd));
    standby.pin_loads();
    l.await(standby.load("svc/", [](std::string_view, std::string_view) {}));
    const std::uint64_t pinned = standby.pinned_revision();
    REQUIRE(pinned > 0);
    follower f;
    f.follow(standby, pinned);

    std::vector<store_batch> committed;
    std::uint64_t revision = 0;
    auto commit_some = [&](int n) {
        for (int i = 0; i < n; ++i) {
            ++revision;
            committed.push_back(batch(revision, {{"log/" + std::to_string(revision), "v" + std::to_string(revision)},
                                                 {"svc/x", "at " + std::to_string(revision)}}));
            l.commit(writer, committed.back());
        }
    };
    commit_some(5);
    REQUIRE(l.until([&] { return f.seen.size() == 5; }, 10s));

    etcd.stop();
    l.run_for(1200ms);  // the standby retries against nothing
    etcd.start();
    commit_some(5);  // before the standby is back, most likely: it catches up
    REQUIRE(l.until([&] { return f.seen.size() >= 10; }, 15s));
    commit_some(3);  // and goes on following
    REQUIRE(l.until([&] { return f.seen.size() >= 13; }, 10s));
    l.run_for(500ms);

    REQUIRE(f.seen.size() == committed.size());
    CHECK(f.lost.empty());
    for (std::size_t i = 0; i < committed.size(); ++i) check_txn(f.seen[i], pinned + 1 + i, expected_of(committed[i]));

    standby.stop();
    writer.stop();
}

TEST_CASE("etcd follow: read_barrier waits until the standby has seen what the writer committed") {
    it::etcd_server etcd;
    loop l;
    registryd::etcd_store_port writer(l.io, follow_options(etcd));
    registryd::etcd_store_port standby(l.io, follow_options(etcd));

    // Nothing committed yet: nothing to wait for, following or not.
    CHECK(l.await(standby.read_barrier()).ok());

    standby.pin_loads();
    l.await(standby.load("svc/", [](std::string_view, std::string_view) {}));
    const std::uint64_t pinned = standby.pinned_revision();

    // A backlog the standby has not seen: a barrier must wait for all of it.
    constexpr int backlog = 100;
    for (int i = 1; i <= backlog; ++i) l.commit(writer, batch(i, {{"log/" + std::to_string(i), "x"}}));
    {
        auto early = l.await(standby.read_barrier());  // not following: it cannot get there
        REQUIRE_FALSE(early.ok());
        CHECK(early.err().code == registry::errc::unavailable);
        CHECK(early.err().message.find("not following") != std::string::npos);
    }
    follower f;
    f.follow(standby, pinned);
    std::size_t seen_at_barrier = 0;
    auto barrier = l.start([](registryd::etcd_store_port& p, follower& fo, std::size_t& at) -> registry::task<bool> {
        auto r = co_await p.read_barrier();
        at = fo.seen.size();
        co_return r.ok();
    }(standby, f, seen_at_barrier));
    // Several barriers at once share etcd's answers and all get there.
    std::vector<std::shared_ptr<outcome<registry::result<void>>>> more;
    for (int i = 0; i < 5; ++i) more.push_back(l.start(standby.read_barrier()));
    REQUIRE(l.until([&] { return barrier->done; }, 15s));
    REQUIRE(barrier->value.has_value());
    CHECK(*barrier->value);
    CHECK(seen_at_barrier == backlog);

    // Each commit acknowledged by the writer is seen when a barrier after it completes.
    for (int i = 1; i <= 20; ++i) {
        const std::uint64_t r = backlog + i;
        l.commit(writer, batch(r, {{"svc/s", std::to_string(r)}}));
        auto ok = l.await(standby.read_barrier());
        REQUIRE_MESSAGE(ok.ok(), ok.err().message);
        REQUIRE(!f.seen.empty());
        CHECK(describe(f.seen.back().mutations) == "svc/s='" + std::to_string(r) + "' ");
    }
    REQUIRE(l.until([&] {
        for (auto& m : more) if (!m->done) return false;
        return true;
    }, 10s));
    for (auto& m : more) CHECK((m->value && m->value->ok()));

    standby.stop();
    writer.stop();
}

TEST_CASE("etcd follow: read_barrier with etcd stopped fails unavailable within the timeout") {
    it::etcd_server etcd;
    loop l;
    registryd::etcd_store_port writer(l.io, follow_options(etcd));
    registryd::etcd_store_port standby(l.io, follow_options(etcd));
    standby.pin_loads();
    l.await(standby.load("svc/", [](std::string_view, std::string_view) {}));
    follower f;
    f.follow(standby, standby.pinned_revision());
    l.commit(writer, batch(1, {{"svc/a", "1"}}));
    REQUIRE(l.await(standby.read_barrier()).ok());

    etcd.stop();
    const auto t0 = it::steady::now();
    auto r = l.await(standby.read_barrier(), 20s);
    const auto took = it::steady::now() - t0;
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == registry::errc::unavailable);
    CHECK(r.err().message.find("etcd") != std::string::npos);
    CHECK(took < it::scaled(5000ms));  // dial timeout 500 ms, request timeout 2 s
    MESSAGE("read barrier with etcd stopped: " << r.err().message);

    standby.stop();
    writer.stop();
}

TEST_CASE("etcd follow: revisions compacted away: a pinned load fails and following reports them lost") {
    it::etcd_server etcd;
    loop l;
    registryd::etcd_store_port writer(l.io, follow_options(etcd));
    registryd::etcd_store_port standby(l.io, follow_options(etcd));
    l.commit(writer, batch(1, {{"svc/a", "1"}}));
    standby.pin_loads();
    l.await(standby.load("svc/", [](std::string_view, std::string_view) {}));
    const std::uint64_t pinned = standby.pinned_revision();
    for (int i = 2; i <= 4; ++i) l.commit(writer, batch(i, {{"log/" + std::to_string(i), "x"}}));
    const std::uint64_t now = etcd_revision(l, etcd);
    REQUIRE(now > pinned + 1);
    etcd_post(l, etcd, "/v3/kv/compaction", "{\"revision\":\"" + std::to_string(now) + "\",\"physical\":true}");

    try {
        l.await(standby.load("log/", [](std::string_view, std::string_view) {}));
        FAIL("a load pinned to a compacted revision succeeded");
    } catch (const registry::store_error& e) {
        CHECK(std::string(e.what()).find("compacted") != std::string::npos);
        CHECK(std::string(e.what()).find(std::to_string(pinned)) != std::string::npos);
    }

    follower f;
    f.follow(standby, pinned);
    REQUIRE(l.until([&] { return !f.lost.empty(); }, 10s));
    l.run_for(1000ms);  // once, and following has ended
    CHECK(f.lost.size() == 1);
    CHECK(f.lost.front().find("compacted") != std::string::npos);
    CHECK(f.seen.empty());
    auto r = l.await(standby.read_barrier());
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == registry::errc::unavailable);

    standby.stop();
    writer.stop();
}

// What the gateway streams, cut anywhere: the messages come out whole, each once.
TEST_CASE("etcd follow: the watch stream is cut into its messages whatever the reads, within a bound") {
    const std::string a = R"({"result":{"header":{"revision":"3"},"created":true}})";
    const std::string b = R"({"result":{"events":[{"kv":{"key":"L2Yvc3ZjL3g=","mod_revision":"4","value":"e30="}}]}})";
    const std::string c = R"({"error":{"message":"a \"}\" and a \\ in a string {["}})";
    const std::string stream = a + "\n" + b + "\n" + c + "\n";
    for (std::size_t step : {std::size_t(1), std::size_t(2), std::size_t(7), stream.size()}) {
        registryd::json_object_splitter split(1024);
        std::vector<std::string> out;
        for (std::size_t at = 0; at < stream.size(); at += step) {
            REQUIRE(split.feed(std::string_view(stream).substr(at, step)));
            while (auto o = split.next()) out.emplace_back(*o);
        }
        const std::vector<std::string> whole{a, b, c};
        CHECK_MESSAGE(out == whole, "reads of " << step << " bytes");
    }
    registryd::json_object_splitter small(40);
    REQUIRE(small.feed(a.substr(0, 30)));
    CHECK_FALSE(small.next());
    CHECK_FALSE(small.feed(a.substr(30)));  // the unfinished message would pass 40 bytes
    registryd::json_object_splitter junk(1024);
    REQUIRE(junk.feed("\n<html>"));
    CHECK_THROWS_AS(junk.next(), registry::store_error);
}

TEST_CASE("etcd follow: a watch message becomes the transactions it holds") {
    using registryd::base64_encode;
    auto put = [](const std::string& key, std::uint64_t rev, const std::optional<std::string>& value) {
        return R"({"kv":{"key":")" + base64_encode(key) + R"(","mod_revision":")" + std::to_string(rev) + "\"" +
               (value ? R"(,"value":")" + base64_encode(*value) + "\"" : std::string()) + "}}";
    };
    auto del = [](const std::string& key, std::uint64_t rev) {
        return R"({"type":"DELETE","kv":{"key":")" + base64_encode(key) + R"(","mod_revision":")" +
               std::to_string(rev) + "\"}}";
    };
    const std::string message = R"({"result":{"header":{"revision":"9"},"events":[)" +
                                put("/p/log/1", 5, "one") + "," + put("/p/meta/revision", 5, "1") + "," +
                                put("/p/meta/revision", 6, "2") + "," +  // a revision of meta keys only
                                del("/p/svc/a", 7) + "," + put("/p/svc/b", 7, std::nullopt) + "," +
                                put("/p/meta/revision", 7, "3") + "]}}";
    simdjson::dom::parser parser;
    const auto m = registryd::parse_watch_message(parser, message, "/p/");
    CHECK_FALSE(m.error);
    CHECK_FALSE(m.created);
    CHECK_FALSE(m.canceled);
    CHECK(m.compact_revision == 0);
    REQUIRE(m.revisions.size() == 3);
    CHECK(m.revisions[0].revision == 5);
    CHECK(describe(m.revisions[0].mutations) == "log/1='one' ");
    CHECK(m.revisions[1].revision == 6);
    CHECK(m.revisions[1].mutations.empty());
    CHECK(m.revisions[2].revision == 7);
    CHECK(describe(m.revisions[2].mutations) == "svc/a=<deleted> svc/b='' ");

    const auto compacted = registryd::parse_watch_message(
        parser, R"({"result":{"header":{},"canceled":true,"compact_revision":"12"}})", "/p/");
    CHECK(compacted.canceled);
    CHECK(compacted.compact_revision == 12);
    const auto error = registryd::parse_watch_message(parser, R"({"error":{"grpc_code":14,"message":"no leader"}})", "/p/");
    REQUIRE(error.error);
    CHECK(*error.error == "no leader");
    CHECK_THROWS_AS(registryd::parse_watch_message(parser, R"({"result":{"events":[{"kv":{"key":"!!"}}]}})", "/p/"),
                    registry::store_error);
}
