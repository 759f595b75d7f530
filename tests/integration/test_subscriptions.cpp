// Subscriptions: resume from a revision, resync, and flow control.
#include "harness.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

using it::arr;
using it::dump;
using it::num;
using it::parse_object;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;

namespace {

struct expected_event {
    std::string type;
    std::int64_t revision;
    std::string instance;
};

std::string describe(const std::vector<expected_event>& v) {
    std::string s;
    for (const auto& e : v) s += "  " + e.type + " r" + std::to_string(e.revision) + " " + e.instance + "\n";
    return s;
}

std::vector<std::string> sorted_ids(const json::array& services) {
    std::vector<std::string> ids;
    for (const auto& s : services) ids.push_back(str(s, "/instance_id"));
    std::sort(ids.begin(), ids.end());
    return ids;
}

}  // namespace

TEST_CASE("integration: a subscription resumes from a revision, or resyncs when history is gone") {
    it::registryd d{"registry:\n  history_limit: 16\n  bookmark_interval_seconds: 3600\n"};
    IT_DIAGNOSE(d);
    it::ws_client w(d);
    auto reg = [&](const std::string& instance) {
        return num(w.call("register", it::registration(it::service("res", instance), 300)), "/revision");
    };
    auto set_state = [&](const std::string& instance, const char* state) {
        return num(w.call("set_state", json::object{{"instance_id", instance}, {"state", state}}), "/revision");
    };
    auto dereg = [&](const std::string& instance) {
        return num(w.call("deregister", json::object{{"instance_id", instance}}), "/revision");
    };

    // Subscribe, see three registrations, note the last revision.
    std::int64_t last_seen = 0;
    {
        it::ws_client s1(d);
        const json::value sub = s1.call("subscribe");
        s1.expect_event("registry_loaded");
        for (const char* instance : {"res-1", "res-2", "res-3"}) {
            const auto rev = reg(instance);
            const json::value ev = s1.expect_event("service_registered");
            CHECK(num(ev, "/revision") == rev);
            last_seen = num(ev, "/revision");
        }
        const json::value un = s1.call("unsubscribe", json::object{{"subscription", str(sub, "/subscription")}});
        CHECK(str(un, "/subscription") == str(sub, "/subscription"));
        CHECK(it::error_code(s1.request("unsubscribe", json::object{{"subscription", str(sub, "/subscription")}})) ==
              "not_found");
        // No event of the subscription follows the unsubscribe response.
        std::vector<expected_event> missed{{"service_registered", reg("res-4"), "res-4"}};
        const auto after_unsubscribe = s1.next_event(300ms, true);
        CHECK_MESSAGE(!after_unsubscribe, "event after unsubscribe: ",
                      after_unsubscribe ? dump(*after_unsubscribe) : std::string());
        s1.close();

        // Changes while nobody listens.
        missed.push_back({"service_state_changed", set_state("res-1", "starting"), "res-1"});
        missed.push_back({"service_registered", reg("res-5"), "res-5"});
        missed.push_back({"service_deregistered", dereg("res-2"), "res-2"});
        missed.push_back({"service_state_changed", set_state("res-1", "running"), "res-1"});

        // Resume: exactly the missed events, in order, then live ones.
        it::ws_client s2(d);
        const json::value resumed = s2.call("subscribe", json::object{{"from_revision", last_seen}});
        INFO("subscribe from ", last_seen, ": ", dump(resumed));
        CHECK(num(resumed, "/revision") == missed.back().revision);
        INFO("expected replay:\n", describe(missed));
        for (const expected_event& e : missed) {
            const auto got = s2.next_event(2s);
            REQUIRE_MESSAGE(got.has_value(), "replay stopped before ", e.type, " r", e.revision);
            INFO("replayed: ", dump(*got));
            CHECK(str(*got, "/event") == e.type);
            CHECK(num(*got, "/revision") == e.revision);
            CHECK(str(*got, "/data/service/instance_id") == e.instance);
        }
        {
            const auto extra = s2.next_event(300ms);
            CHECK_MESSAGE(!extra, "unexpected event after the replay: ", extra ? dump(*extra) : std::string());
        }
        const auto live = reg("res-6");
        const json::value ev = s2.expect_event("service_registered");
        CHECK(num(ev, "/revision") == live);
        CHECK(str(ev, "/data/service/instance_id") == "res-6");

        // A filtered resume replays only the matching events.
        it::ws_client s3(d);
        s3.call("subscribe", parse_object(R"({"events": ["service_deregistered"], "from_revision": )" +
                                          std::to_string(last_seen) + "}"));
        const json::value only = s3.expect_event("service_deregistered", 2s);
        CHECK(num(only, "/revision") == missed[3].revision);
        const auto extra = s3.next_event(300ms);
        CHECK_MESSAGE(!extra, "unexpected event in a filtered replay: ", extra ? dump(*extra) : std::string());
    }

    // 50 more changes: history (16) no longer reaches back to last_seen.
    for (int i = 0; i < 50; ++i) reg("bulk-" + std::to_string(i));
    const json::value listed = w.call("list_services");
    const auto current = num(listed, "/revision");
    {
        it::ws_client s4(d);
        const json::value sub = s4.call("subscribe", json::object{{"from_revision", last_seen}});
        INFO("subscribe from ", last_seen, " (too old): ", dump(sub));
        const json::value resync = s4.expect_event("resync_required", 2s);
        INFO("resync: ", dump(resync));
        CHECK(num(resync, "/data/from_revision") == last_seen);
        CHECK(num(resync, "/data/oldest_revision") > last_seen + 1);
        CHECK(num(resync, "/data/oldest_revision") <= current);
        const json::value loaded = s4.expect_event("registry_loaded", 2s);
        CHECK(num(loaded, "/revision") == current);
        CHECK(sorted_ids(arr(loaded, "/data/services")) == sorted_ids(arr(listed, "/services")));
        const auto extra = s4.next_event(300ms);
        CHECK_MESSAGE(!extra, "unexpected event after the resync snapshot: ", extra ? dump(*extra) : std::string());
    }
    {
        // A revision from the future (e.g. from before a data wipe) also resyncs.
        it::ws_client s5(d);
        s5.call("subscribe", json::object{{"from_revision", current + 1000}});
        const json::value resync = s5.expect_event("resync_required", 2s);
        CHECK(num(resync, "/data/from_revision") == current + 1000);
        const json::value loaded = s5.expect_event("registry_loaded", 2s);
        CHECK(num(loaded, "/revision") == current);
    }
    {
        // Within the history: replay works right at the edge of the window.
        it::ws_client s6(d);
        s6.call("subscribe", json::object{{"from_revision", current - 5}});
        for (std::int64_t rev = current - 4; rev <= current; ++rev) {
            const json::value ev = s6.expect_event("service_registered", 2s);
            CHECK(num(ev, "/revision") == rev);
        }
    }
}

TEST_CASE("integration: a slow consumer is closed with 1008 while other subscribers get every event") {
    std::string summary;  // reported after the daemon is gone (no stderr dump)
    {
        it::registryd d{"limits:\n  outbound_queue_messages: 64\n"};
        IT_DIAGNOSE(d);
        constexpr int total = 3000;
        constexpr std::size_t window = 16;
        const std::string padding(2000, 'p');

        // The slow client: a tiny receive buffer, subscribed, then never read.
        it::client_options tiny;
        tiny.receive_buffer_bytes = 4096;
        it::ws_client slow(d, tiny);
        slow.call("subscribe");
        slow.expect_event("registry_loaded");

        // The normal subscriber reads on its own thread.
        it::ws_client normal(d);
        normal.call("subscribe");
        normal.expect_event("registry_loaded");
        struct seen {
            std::string type;
            std::int64_t revision;
            std::string instance;
        };
        std::vector<seen> received;
        std::string normal_error;
        std::atomic<std::int64_t> final_revision{-1};
        std::thread reader([&] {
            try {
                const auto deadline = it::steady::now() + it::scaled(120s);
                std::int64_t last = -1;
                for (;;) {
                    if (auto ev = normal.next_event(100ms)) {
                        last = num(*ev, "/revision");
                        received.push_back({str(*ev, "/event"), last, str(*ev, "/data/service/instance_id")});
                    }
                    const auto target = final_revision.load();
                    if (target >= 0 && last >= target) break;
                    if (normal.is_closed()) {
                        normal_error = "normal subscriber closed: " + normal.close_status().describe();
                        break;
                    }
                    if (it::steady::now() > deadline) {
                        normal_error = "normal subscriber: timeout, last revision " + std::to_string(last);
                        break;
                    }
                }
            } catch (const std::exception& e) {
                normal_error = e.what();
            }
        });

        // Many changes, pipelined (window < the queue bound so that the writer is
        // not a slow consumer itself).
        std::map<std::int64_t, std::string> written;  // revision -> instance
        std::string writer_error;
        const auto t0 = it::steady::now();
        try {
            it::ws_client w(d);
            std::map<std::string, std::string> inflight;
            int next = 0;
            while (next < total || !inflight.empty()) {
                while (next < total && inflight.size() < window) {
                    const std::string instance = "pad-" + std::to_string(next++);
                    json::object svc = it::service("pad", instance);
                    svc["metadata"] = json::object{{"padding", padding}};
                    inflight.emplace(w.send_request("register", it::registration(std::move(svc), 300)), instance);
                }
                const json::value r = w.next_response(10s);
                const auto node = inflight.extract(str(r, "/id"));
                if (node.empty() || !it::has(r, "/data")) throw it::failure("register failed: " + dump(r));
                written.emplace(num(r, "/data/revision"), node.mapped());
            }
        } catch (const std::exception& e) {
            writer_error = e.what();
        }
        const auto write_ms = std::chrono::duration_cast<it::ms>(it::steady::now() - t0).count();
        final_revision.store(written.empty() ? 0 : written.rbegin()->first);
        reader.join();
        REQUIRE_MESSAGE(writer_error.empty(), writer_error);

        // The slow client: what it finally reads ends with a 1008 close.
        const it::close_info ci = slow.wait_closed(30s);
        std::size_t slow_events = 0;
        while (slow.next_event(0ms, true)) ++slow_events;
        summary = std::to_string(total) + " registrations in " + std::to_string(write_ms) + " ms; the slow consumer had " +
                  std::to_string(slow_events) + " events before its close: " + ci.describe();
        CHECK_MESSAGE(ci.close_frame, "the slow consumer saw ", ci.describe());
        CHECK(ci.code == 1008);
        CHECK(ci.reason == "slow consumer: outbound queue full");
        CHECK_FALSE(ci.by_client);

        // The normal subscriber got every event, in order.
        CHECK_MESSAGE(normal_error.empty(), normal_error);
        CHECK(received.size() == written.size());
        std::size_t mismatches = 0;
        std::string first_mismatch;
        auto it_written = written.begin();
        for (std::size_t i = 0; i < received.size(); ++i, ++it_written) {
            const bool ok = it_written != written.end() && received[i].type == "service_registered" &&
                            received[i].revision == it_written->first && received[i].instance == it_written->second;
            if (!ok && mismatches++ == 0)
                first_mismatch = "event #" + std::to_string(i) + ": " + received[i].type + " r" +
                                 std::to_string(received[i].revision) + " " + received[i].instance;
        }
        CHECK_MESSAGE(mismatches == 0, mismatches, " events differ, first: ", first_mismatch);
        CHECK_FALSE(normal.is_closed());

        // The daemon is fine.
        CHECK(d.running());
        CHECK(it::http_get(d.host(), d.port(), "/healthz").status == 200);
        it::ws_client after(d);
        CHECK(str(after.call("get_service", parse_object(R"({"instance_id": "pad-0"})")), "/service/instance_id") == "pad-0");
        const std::string last = "pad-" + std::to_string(total - 1);
        CHECK(str(after.call("get_service", json::object{{"instance_id", last}}), "/service/instance_id") == last);
        // The slow client can come back and resume.
        it::ws_client back(d);
        back.call("subscribe", json::object{{"from_revision", final_revision.load() - 1}});
        CHECK(num(back.expect_event("service_registered"), "/revision") == final_revision.load());
    }
    MESSAGE(summary);
}
