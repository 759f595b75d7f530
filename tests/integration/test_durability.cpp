// Durability: a clean restart, and kill -9 under load, on the embedded file
// store and on etcd (store.kind: etcd, a real etcd started by the test).
#include "etcd_server.hpp"
#include "harness.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using it::boolean;
using it::dump;
using it::num;
using it::parse_object;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;

namespace {

// `config`: the store's (empty: the embedded file store).
void check_clean_restart(const std::string& config) {
    it::registryd d(config);
    IT_DIAGNOSE(d);

    struct record {
        std::string instance;
        std::int64_t lease = 0;
        std::int64_t ttl = 0;
        std::int64_t expires = 0;
    };
    std::vector<record> records;
    std::int64_t revision_before = 0;
    {
        it::ws_client c(d);
        const std::pair<const char*, int> specs[] = {{"alpha-1", 300}, {"beta-1", 600}, {"gamma-1", 3600}, {"delta-1", 45}};
        for (const auto& [instance, ttl] : specs) {
            json::object svc = it::service(std::string(instance).substr(0, std::string(instance).find('-')), instance);
            svc["version"] = "1.0";
            svc["metadata"] = json::object{{"k", instance}};
            svc["endpoints"] = parse_object(R"({"a": [{"name": "http", "address": "127.0.0.1", "port": 80, "protocol": "http"}]})")["a"];
            const json::value r = c.call("register", it::registration(std::move(svc), ttl));
            records.push_back({instance, num(r, "/lease_id"), ttl, num(r, "/expires_at_ms")});
        }
        // A state change and a keepalive are durable too (the keepalive's new
        // deadline is what must survive).
        c.call("set_state", parse_object(R"({"instance_id": "beta-1", "state": "starting"})"));
        std::this_thread::sleep_for(20ms);  // so that the renewed deadline differs from the first
        const json::value k = c.call("keepalive", json::object{{"lease_id", records[2].lease}});
        CHECK(num(k, "/expires_at_ms") > records[2].expires);
        records[2].expires = num(k, "/expires_at_ms");
        revision_before = num(c.call("list_services"), "/revision");
    }

    const it::exit_status st = d.terminate();
    INFO("exit: ", st.describe());
    CHECK(st.clean());

    d.start();
    it::ws_client c(d);
    for (const record& rec : records) {
        const json::value got = c.call("get_service", json::object{{"instance_id", rec.instance}});
        INFO(rec.instance, ": ", dump(got));
        CHECK(num(got, "/service/lease/id") == rec.lease);
        CHECK(num(got, "/service/lease/ttl_seconds") == rec.ttl);
        CHECK(num(got, "/service/lease/expires_at_ms") == rec.expires);
        CHECK(str(got, "/service/metadata/k") == rec.instance);
        CHECK(num(got, "/service/endpoints/0/port") == 80);
    }
    CHECK(str(c.call("get_service", parse_object(R"({"instance_id": "beta-1"})")), "/service/state") == "starting");
    const json::value listed = c.call("list_services");
    CHECK(it::arr(listed, "/services").size() == records.size());
    CHECK(num(listed, "/revision") >= revision_before);

    // A keepalive on a lease granted before the restart works.
    const auto before_ms = it::now_ms();
    const json::value k = c.call("keepalive", json::object{{"lease_id", records[0].lease}});
    INFO("keepalive after restart: ", dump(k));
    CHECK(num(k, "/lease_id") == records[0].lease);
    CHECK(str(k, "/instance_id") == records[0].instance);
    CHECK(num(k, "/ttl_seconds") == records[0].ttl);
    CHECK(num(k, "/expires_at_ms") >= before_ms + records[0].ttl * 1000 - 50);

    // New grants neither reuse lease ids nor revisions.
    const json::value fresh = c.call("register", it::registration(it::service("epsilon", "epsilon-1"), 30));
    for (const record& rec : records) CHECK(num(fresh, "/lease_id") != rec.lease);
    CHECK(num(fresh, "/revision") > revision_before);
    // Close first: the daemon would otherwise wait (up to the shutdown
    // timeout) for this client to answer its close frame.
    c.close();

    const it::exit_status st2 = d.terminate();
    INFO("second exit: ", st2.describe());
    CHECK(st2.clean());
}

// The configuration of a registryd that keeps its registry in `etcd`.
std::string etcd_store(const it::etcd_server& etcd, const std::string& prefix = "/registry/") {
    // A killed registryd's writer lease holds its successor back for the TTL: the shortest.
    return "store:\n  kind: etcd\n  etcd:\n    endpoints: [\"" + etcd.client_url() + "\"]\n    prefix: " + prefix +
           "\n    writer_lease_ttl_seconds: 2\n";
}

}  // namespace

TEST_CASE("integration: a clean restart keeps every service with the same lease deadline") { check_clean_restart(""); }

TEST_CASE("integration: a clean restart on the etcd store keeps every service with the same lease deadline") {
    it::etcd_server etcd;
    check_clean_restart(etcd_store(etcd));
}

namespace {

// Rounds of pipelined registrations from several connections, each ended by
// kill -9 at some moment; after each restart every acknowledged one is there.
// `snapshots`: the file store compacts (a small compact_journal_bytes), so a
// restart recovers from a snapshot.
void check_kill9_under_load(const std::string& extra_config, bool snapshots = false) {
    std::string summary;  // reported after the daemon is gone (no stderr dump)
    {
        // Large list_services answers must fit the outbound queue.
        // Eight connections from one address at full speed: no rate limit (what is tested is the store).
        it::registryd d{"limits:\n  outbound_queue_bytes: 512MiB\nrate_limits:\n  enabled: false\n" + extra_config};
        IT_DIAGNOSE(d);

        constexpr int threads = 8;
        constexpr int rounds = 3;
        constexpr std::size_t window = 4;  // pipelined registrations per connection
        const std::chrono::milliseconds kill_after[rounds] = {1000ms, 700ms, 1300ms};

        std::set<std::string> acked_all;  // acknowledged in any round: must exist forever (TTL 1 h)
        std::ostringstream report;

        for (int round = 0; round < rounds; ++round) {
            CAPTURE(round);
            if (round > 0) {
                d.start();
                d.wait_writer();  // on etcd: once the killed one's writer lease ran out
            }

            struct worker {
                std::vector<std::string> sent;
                std::vector<std::string> acked;
                std::string error;
            };
            std::vector<worker> workers(threads);
            std::atomic<bool> killed{false};
            std::atomic<std::size_t> acked_count{0};
            std::vector<std::thread> pool;
            const std::string host = d.host();
            const std::uint16_t port = d.port();
            for (int t = 0; t < threads; ++t) {
                pool.emplace_back([&, t] {
                    worker& me = workers[static_cast<std::size_t>(t)];
                    const std::string name = "load-r" + std::to_string(round) + "-t" + std::to_string(t);
                    try {
                        it::ws_client c(host, port);
                        std::map<std::string, std::string> inflight;  // request id -> instance id
                        for (std::size_t seq = 0;; ) {
                            while (inflight.size() < window) {
                                const std::string instance = name + "-" + std::to_string(seq++);
                                me.sent.push_back(instance);
                                inflight.emplace(c.send_request("register", it::registration(it::service(name, instance), 3600)),
                                                 instance);
                            }
                            const json::value r = c.next_response(5s);
                            const auto node = inflight.extract(str(r, "/id"));
                            if (node.empty()) throw it::failure("response to an unknown id: " + dump(r));
                            if (it::has(r, "/data")) {
                                me.acked.push_back(node.mapped());
                                acked_count.fetch_add(1, std::memory_order_relaxed);
                            } else {
                                throw it::failure("register " + node.mapped() + " failed: " + dump(r));
                            }
                        }
                    } catch (const std::exception& e) {
                        if (!killed.load()) me.error = e.what();
                    }
                });
            }

            const auto started = it::steady::now();
            std::this_thread::sleep_until(started + kill_after[round]);  // the point of the test: a moment under load
            // Make sure there was load to lose (bounded).
            while (acked_count.load() == 0 && it::steady::now() < started + it::scaled(5s))
                std::this_thread::sleep_for(10ms);
            killed.store(true);
            const it::exit_status st = d.kill9();
            CHECK(st.signal == SIGKILL);
            for (auto& th : pool) th.join();

            std::size_t sent = 0, acked = 0;
            for (const worker& w : workers) {
                CHECK_MESSAGE(w.error.empty(), "worker error before the kill: ", w.error);
                sent += w.sent.size();
                acked += w.acked.size();
                acked_all.insert(w.acked.begin(), w.acked.end());
            }
            CHECK(acked > 0);

            d.start();
            d.wait_writer();
            it::ws_client c(d);
            std::set<std::string> present;
            for (int r = 0; r <= round; ++r) {
                for (int t = 0; t < threads; ++t) {
                    const std::string name = "load-r" + std::to_string(r) + "-t" + std::to_string(t);
                    // Every page of the listing (at most listings.max_page_items each).
                    json::object params{{"name", name}};
                    for (;;) {
                        const json::value listed = c.call("list_services", params, 30s);
                        for (const auto& s : it::arr(listed, "/services")) present.insert(str(s, "/instance_id"));
                        if (!it::has(listed, "/continue")) break;
                        params = json::object{{"continue", str(listed, "/continue")}};
                    }
                }
            }
            std::size_t missing = 0;
            std::string missing_examples;
            for (const std::string& id : acked_all) {
                if (!present.count(id)) {
                    if (++missing <= 10) missing_examples += " " + id;
                }
            }
            std::size_t unacked_present = 0;
            for (const worker& w : workers) {
                const std::set<std::string> ack(w.acked.begin(), w.acked.end());
                for (const std::string& id : w.sent)
                    if (!ack.count(id) && present.count(id)) ++unacked_present;
            }
            CHECK_MESSAGE(missing == 0, missing, " acknowledged registrations lost after kill -9 in round ", round, ":",
                          missing_examples);
            report << "round " << round << ": killed after " << kill_after[round].count() << " ms, sent " << sent
                   << ", acknowledged " << acked << ", unacknowledged but present " << unacked_present
                   << ", present after restart (all rounds) " << present.size() << ", acknowledged so far "
                   << acked_all.size() << ", lost " << missing << "\n";
            if (round + 1 < rounds) {
                // The next round starts the daemon again itself.
                const it::exit_status st2 = d.kill9();
                CHECK(st2.signal == SIGKILL);
            }
        }
        // With a small compact_journal_bytes the rounds compacted, and the
        // restarts recovered from a snapshot.
        if (snapshots) CHECK(std::filesystem::exists(d.data_dir() / "snapshot"));
        summary = "kill -9 under load:\n" + report.str();
        const it::exit_status st = d.terminate();
        INFO("final exit: ", st.describe());
        CHECK(st.clean());
    }
    MESSAGE(summary);
}

}  // namespace

TEST_CASE("integration: kill -9 under load loses no acknowledged registration") { check_kill9_under_load(""); }

TEST_CASE("integration: kill -9 under load with frequent compactions loses no acknowledged registration") {
    // A snapshot every 64 KiB of journal: kills land before, during and after
    // compactions, whose values are copied from the old snapshot and journal.
    check_kill9_under_load("store:\n  compact_journal_bytes: 65536\n", true);
}

TEST_CASE("integration: kill -9 under load on the etcd store loses no acknowledged registration") {
    it::etcd_server etcd;
    check_kill9_under_load(etcd_store(etcd));
}
