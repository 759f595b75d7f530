// registered_engines on a fake clock, an in-memory store and in-memory
// engines: a service declaring itself a container engine becomes a node while
// it is registered; malformed declarations and name clashes are refused at
// registration; a restart brings registered engines back and adopts their
// containers.
#include "registry_test_support.hpp"

#include <registry/container_manager.hpp>
#include <registry/registered_engines.hpp>
#include <registry/testing/memory_engine.hpp>

#include <doctest/doctest.h>

#include <map>
#include <optional>

namespace {

using namespace registry;
using namespace std::chrono_literals;
using registry::test::collector;
using registry::test::run_now;
using testing::memory_engine;
using strings = std::vector<std::string>;

// A client of a memory_engine the test owns: the engine's containers outlive
// the client, like a real engine's outlive a connection to it.
class engine_client final : public container_engine {
public:
    explicit engine_client(memory_engine& e) : e_(e) {}
    task<result<void>> ping(std::stop_token c) override { return e_.ping(c); }
    task<result<engine_info>> version(std::stop_token c) override { return e_.version(c); }
    task<result<std::string>> create(container_spec s, std::stop_token c) override { return e_.create(s, c); }
    task<result<void>> start(std::string id, std::stop_token c) override { return e_.start(id, c); }
    task<result<void>> stop(std::string id, std::chrono::seconds g, std::stop_token c) override {
        return e_.stop(id, g, c);
    }
    task<result<void>> remove(std::string id, bool f, std::stop_token c) override { return e_.remove(id, f, c); }
    task<result<container_info>> inspect(std::string id, std::stop_token c) override { return e_.inspect(id, c); }
    task<result<std::vector<container_summary>>> list(label_selector l, std::stop_token c) override {
        return e_.list(l, c);
    }
    task<result<int>> wait(std::string id, std::stop_token c) override { return e_.wait(id, c); }
    task<result<engine_stream<output_chunk>>> logs(std::string id, log_options o, std::stop_token c) override {
        return e_.logs(id, o, c);
    }
    task<result<engine_stream<output_chunk>>> attach(std::string id, std::stop_token c) override {
        return e_.attach(id, c);
    }
    task<result<void>> put_archive(std::string id, std::string d, std::vector<archive_file> f,
                                   std::stop_token c) override {
        return e_.put_archive(id, d, f, c);
    }
    task<result<engine_stream<pull_progress>>> pull_image(std::string r, std::stop_token c) override {
        return e_.pull_image(r, c);
    }

private:
    memory_engine& e_;
};

// Endpoints the test has engines for; anything else is refused.
struct fake_connector final : engine_connector {
    std::map<std::string, memory_engine*> engines;
    strings asked;
    result<std::unique_ptr<container_engine>> connect(const std::string& endpoint) override {
        asked.push_back(endpoint);
        auto it = engines.find(endpoint);
        if (it == engines.end()) return fail(errc::invalid_request, "no engine at " + endpoint);
        return std::unique_ptr<container_engine>(std::make_unique<engine_client>(*it->second));
    }
};

struct cluster {
    testing::fake_clock clk;
    testing::memory_store st;
    memory_engine a{"a"};  // configured
    memory_engine w{"w"};  // registers itself at tcp://10.0.0.7:2375
    fake_connector connector;
    std::optional<class registry> reg;
    collector events;
    std::optional<container_manager> mgr;
    std::optional<registered_engines> engines;
    std::optional<std::stop_source> stop;
    async_scope scope;
    strings problems;

    cluster() { connector.engines["tcp://10.0.0.7:2375"] = &w; }

    void start() {
        reg.emplace(clk, st);
        REQUIRE(run_now(reg->open()));
        watch_options o;
        o.snapshot = false;
        events.events.clear();
        events.stop = std::stop_source{};
        events.start(*reg, o);
        container_manager_options opt;
        opt.instance_id = "reg-1";
        opt.heartbeat_interval = 1s;
        opt.heartbeat_timeout = 3s;
        mgr.emplace(*reg, clk, st, std::vector<container_node>{{"a", "mem://a", &a, 2}}, opt);
        REQUIRE(run_now(mgr->open()));
        engines.emplace(*reg, *mgr, connector, [this](const std::string& id, const error& why) {
            problems.push_back(id + ": " + std::string(to_string(why.code)) + ": " + why.message);
        });
        stop.emplace();
        scope.spawn(reg->run(stop->get_token()));
        scope.spawn(mgr->run(stop->get_token()));
        scope.spawn(engines->run(stop->get_token()));
    }

    void shut_down() {
        if (!stop) return;
        stop->request_stop();
        REQUIRE(scope.active() == 0);
        stop.reset();
        events.end();
        engines.reset();
        mgr.reset();
        reg.reset();
    }

    ~cluster() { shut_down(); }

    static registration engine_service(std::string id = "worker-1", std::string capacity = "3") {
        registration r;
        r.service.name = "podman";
        r.service.instance_id = std::move(id);
        r.service.metadata["kind"] = "container_engine";
        if (!capacity.empty()) r.service.metadata["capacity"] = std::move(capacity);
        r.service.endpoints.push_back(endpoint{"engine", "10.0.0.7", 2375, "tcp"});
        r.ttl = 30s;
        return r;
    }

    lease_grant add(registration r) {
        auto granted = run_now(reg->register_service(std::move(r)));
        REQUIRE_MESSAGE(granted, (granted ? "" : granted.err().message));
        return *granted;
    }

    error refused(registration r) {
        auto granted = run_now(reg->register_service(std::move(r)));
        REQUIRE(!granted);
        return granted.err();
    }

    std::optional<node_status> node(std::string_view name) const {
        for (auto& n : mgr->nodes()) {
            if (n.name == name) return n;
        }
        return std::nullopt;
    }

    container_ptr create(std::optional<std::string> engine, seconds ttl = 100s) {
        container_request r;
        r.spec.image = "img";
        r.ttl = ttl;
        r.engine = std::move(engine);
        auto made = run_now(mgr->create(std::move(r)));
        REQUIRE_MESSAGE(made, (made ? "" : made.err().message));
        return *made;
    }

    // "state (reason)" of the container's container_state_changed events.
    strings history(const container_ptr& c) const {
        strings out;
        for (const auto& e : events.events) {
            if (e->type != event_type::container_state_changed || container_of(*e)->lease_id != c->lease_id) continue;
            out.push_back(std::string(to_string(container_of(*e)->state)) + (e->reason.empty() ? "" : " (" + e->reason + ")"));
        }
        return out;
    }
};

TEST_CASE("registered_engines: a service declaring itself a container engine becomes a node") {
    cluster k;
    k.start();
    REQUIRE(k.mgr->nodes().size() == 1);
    k.add(cluster::engine_service());
    auto n = k.node("worker-1");
    REQUIRE(n);
    CHECK(n->endpoint == "tcp://10.0.0.7:2375");
    CHECK(n->capacity == 3);
    CHECK(n->online);  // pinged at once
    CHECK(n->last_heartbeat == k.clk.now());
    CHECK(k.connector.asked == strings{"tcp://10.0.0.7:2375"});
    CHECK(k.engines->names() == strings{"worker-1"});

    auto on_w = k.create("worker-1");
    CHECK(on_w->engine == "worker-1");
    CHECK(k.w.containers().at(on_w->container_id).status == container_status::running);
    CHECK(k.node("worker-1")->running == 1);
    // Scheduled there too: a has 1/2, worker-1 1/3.
    CHECK(k.create(std::nullopt)->engine == "a");
    CHECK(k.create(std::nullopt)->engine == "worker-1");

    // An ordinary service is no engine.
    registration plain;
    plain.service.name = "api";
    plain.service.metadata["kind"] = "web";
    k.add(plain);
    CHECK(k.mgr->nodes().size() == 2);
}

TEST_CASE("registered_engines: deregistering the engine loses its containers but never kills them") {
    cluster k;
    k.start();
    k.add(cluster::engine_service());
    auto c = k.create("worker-1");
    REQUIRE(run_now(k.reg->deregister("worker-1")));
    CHECK(!k.node("worker-1"));
    CHECK(k.engines->names().empty());
    CHECK(k.history(c) == strings{"created", "running", "lost (engine left: deregistered)"});
    CHECK(k.mgr->find(c->container_id) == nullptr);
    CHECK(!k.st.data().contains("ctr/" + std::to_string(c->lease_id)));
    CHECK(k.w.containers().at(c->container_id).status == container_status::running);  // untouched
    CHECK(k.w.stop_calls == 0);
    container_request r;
    r.spec.image = "img";
    r.engine = "worker-1";
    auto gone = run_now(k.mgr->create(r));
    REQUIRE(!gone);
    CHECK(gone.err().code == errc::not_found);

    // Its heartbeat ended with it: time passing pings nothing any more.
    k.w.offline = true;
    k.clk.advance(10s);
    CHECK(k.mgr->nodes().size() == 1);
}

TEST_CASE("registered_engines: an engine whose lease expires leaves, and coming back adopts what is still leased") {
    cluster k;
    k.start();
    auto r = cluster::engine_service();
    r.ttl = 5s;
    k.add(r);
    auto long_lived = k.create("worker-1", 100s);
    auto short_lived = k.create("worker-1", 8s);
    auto extended = k.create("worker-1", 8s);
    auto renewed = run_now(k.mgr->extend(extended->container_id, 100s));
    REQUIRE(renewed);
    k.clk.advance(5s);
    CHECK(!k.node("worker-1"));
    CHECK(k.history(long_lived).back() == "lost (engine left: lease_expired)");
    CHECK(k.w.exists(short_lived->container_id));
    k.clk.advance(5s);  // short_lived's lease ends while its engine is away: nobody reaps it yet
    CHECK(k.w.exists(short_lived->container_id));

    k.add(cluster::engine_service());  // back: reconciled from the labels
    REQUIRE(k.node("worker-1"));
    CHECK(k.node("worker-1")->online);
    auto adopted = k.mgr->find(long_lived->container_id);
    REQUIRE(adopted);
    CHECK(adopted->expires_at == long_lived->expires_at);
    CHECK(k.mgr->find(short_lived->container_id));  // adopted, expired
    k.clk.advance(1s);                               // the reaper's next round
    CHECK(!k.w.exists(short_lived->container_id));
    // Its labels say 8 s, but the extension was not forgotten.
    REQUIRE(k.mgr->find(extended->container_id));
    CHECK(k.mgr->find(extended->container_id)->expires_at == (*renewed)->expires_at);
    CHECK(k.w.exists(extended->container_id));
    CHECK(k.w.exists(long_lived->container_id));
}

TEST_CASE("registered_engines: a malformed declaration is refused at registration with the field at fault") {
    cluster k;
    k.start();
    auto no_id = cluster::engine_service("");
    auto e = k.refused(no_id);
    CHECK(e.code == errc::invalid_request);
    CHECK(e.message == "service.instance_id: is required for a container engine (it names the node)");

    auto no_endpoint = cluster::engine_service();
    no_endpoint.service.endpoints[0].name = "http";
    e = k.refused(no_endpoint);
    CHECK(e.code == errc::invalid_request);
    CHECK(e.message == "service.endpoints: a container engine needs an endpoint named 'engine'");

    auto udp = cluster::engine_service();
    udp.service.endpoints.insert(udp.service.endpoints.begin(), endpoint{"http", "10.0.0.7", 80, "http"});
    udp.service.endpoints[1].protocol = "udp";
    e = k.refused(udp);
    CHECK(e.message ==
          "service.endpoints[1].protocol: must be 'tcp' or 'http' for a container engine (the Docker Engine API over TCP)");

    for (std::string bad : {"0", "abc", "3 ", "-1", "10001"}) {
        e = k.refused(cluster::engine_service("worker-1", bad));
        CHECK(e.code == errc::invalid_request);
        CHECK(e.message == "service.metadata.capacity: must be a whole number 1-10000");
    }

    // A configured engine's name is taken.
    e = k.refused(cluster::engine_service("a"));
    CHECK(e.code == errc::conflict);
    CHECK(e.message == "service.instance_id: 'a' is the name of a container engine configured on this server");

    CHECK(k.reg->size() == 0);
    CHECK(k.mgr->nodes().size() == 1);
    CHECK(k.connector.asked.empty());

    // Without capacity: the default.
    k.add(cluster::engine_service("worker-1", ""));
    CHECK(k.node("worker-1")->capacity == 8);
}

TEST_CASE("registered_engines: an address the connector refuses leaves the service registered, reported, no node") {
    cluster k;
    k.start();
    auto r = cluster::engine_service();
    r.service.endpoints[0].address = "10.0.0.8";
    k.add(r);
    CHECK(!k.node("worker-1"));
    CHECK(k.problems == strings{"worker-1: invalid_request: no engine at tcp://10.0.0.8:2375"});
    CHECK(k.reg->find("worker-1"));
}

TEST_CASE("registered_engines: re-registering changes the capacity in place, a new endpoint replaces the node") {
    cluster k;
    k.start();
    auto granted = k.add(cluster::engine_service());
    auto c = k.create("worker-1");
    auto bigger = cluster::engine_service("worker-1", "5");
    bigger.lease_id = granted.lease_id;
    k.add(bigger);
    CHECK(k.node("worker-1")->capacity == 5);
    CHECK(k.mgr->find(c->container_id));  // kept
    CHECK(k.connector.asked.size() == 1);

    memory_engine moved{"w2"};
    k.connector.engines["tcp://10.0.0.9:2375"] = &moved;
    auto elsewhere = bigger;
    elsewhere.service.endpoints[0].address = "10.0.0.9";
    k.add(elsewhere);
    CHECK(k.node("worker-1")->endpoint == "tcp://10.0.0.9:2375");
    CHECK(k.history(c).back() == "lost (engine left: its endpoint changed)");
    CHECK(k.w.exists(c->container_id));
}

TEST_CASE("registered_engines: after a restart a registered engine is a node again and its containers are adopted") {
    cluster k;
    k.start();
    k.add(cluster::engine_service());
    auto c = k.create("worker-1", 100s);
    auto extended = run_now(k.mgr->extend(c->container_id, 200s));
    REQUIRE(extended);
    k.shut_down();

    k.clk.advance(10s);
    k.start();
    auto n = k.node("worker-1");
    REQUIRE(n);
    CHECK(n->online);
    CHECK(n->capacity == 3);
    auto adopted = k.mgr->find(c->container_id);
    REQUIRE(adopted);
    CHECK(adopted->state == managed_state::running);
    CHECK(adopted->expires_at == (*extended)->expires_at);  // the stored lease
    CHECK(k.node("worker-1")->running == 1);

    // Its exit waiter is back too.
    k.w.exit(c->container_id, 0);
    CHECK(k.mgr->find(c->container_id)->state == managed_state::exited);
}

TEST_CASE("registered_engines: an engine registered while registryd was down and expired meanwhile does not come back") {
    cluster k;
    k.start();
    auto r = cluster::engine_service();
    r.ttl = 5s;
    k.add(r);
    auto c = k.create("worker-1", 100s);
    k.shut_down();

    k.clk.advance(10s);
    k.start();
    CHECK(!k.node("worker-1"));
    CHECK(k.reg->find("worker-1") == nullptr);
    CHECK(k.w.exists(c->container_id));  // nothing killed
    // Its lease is kept, like one on an engine the configuration dropped,
    // until the engine registers again.
    REQUIRE(k.mgr->find(c->container_id));
    auto stopped = run_now(k.mgr->stop(c->container_id, 1s));
    REQUIRE(!stopped);
    CHECK(stopped.err().code == errc::unavailable);
    k.add(cluster::engine_service());
    CHECK(k.mgr->find(c->container_id)->engine == "worker-1");
    CHECK(k.node("worker-1")->running == 1);
}

}  // namespace
