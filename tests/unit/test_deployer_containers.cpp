// Container packages (service.type container): the manifest's container and
// health sections, and the deployer running them through a fake
// package_containers port and a fake prober, on a fake clock: registered
// with the container's endpoints, gated, a new version started beside the
// old one and replacing it only once it passes, a failing one removed and
// the old one kept, undeploy, service_action, and a restart adopting the
// container instead of starting another.
#include "deployer_test_support.hpp"
#include "registry_test_support.hpp"

#include <registry/deploy/deployer.hpp>
#include <registry/deploy/package_manifest.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace {

using namespace registry;
using namespace registry::deploy;

using test::manifest_unpacker;

bool contains(const std::vector<std::string>& v, std::string_view s) { return std::find(v.begin(), v.end(), s) != v.end(); }

// The manager as the deployer sees it: containers by id, each running until
// the test stops it.
class fake_containers final : public package_containers {
public:
    struct box {
        container_launch launch;
        bool running = true;
        seconds ttl{0};
    };
    std::map<std::string, box> live;
    std::vector<std::string> log;  // "run c1", "remove c1", ...
    int next = 0;
    std::optional<error> refuse;  // run fails with this

    task<result<package_container_status>> run(container_launch launch) override {
        if (refuse) co_return unexpected{*refuse};
        const std::string id = "c" + std::to_string(++next);
        log.push_back("run " + id);
        const seconds ttl = launch.ttl;
        live[id] = box{std::move(launch), true, ttl};
        co_return status(id);
    }
    task<result<package_container_status>> inspect(std::string id) override {
        if (!live.count(id)) co_return fail(errc::not_found, "no container " + id);
        co_return status(id);
    }
    task<result<void>> renew(std::string id, seconds ttl) override {
        if (!live.count(id)) co_return fail(errc::not_found, "no container " + id);
        log.push_back("renew " + id);
        live[id].ttl = ttl;
        co_return result<void>{};
    }
    task<result<void>> stop(std::string id, seconds) override {
        if (!live.count(id)) co_return fail(errc::not_found, "no container " + id);
        live[id].running = false;
        co_return result<void>{};
    }
    task<result<void>> remove(std::string id) override {
        log.push_back("remove " + id);
        live.erase(id);
        co_return result<void>{};
    }

    package_container_status status(const std::string& id) const {
        const box& b = live.at(id);
        return {id, "node-a", "10.88.0." + id.substr(1), b.running, b.running ? "running" : "exited (1)"};
    }
};

// Healthy for the addresses in `healthy`.
class fake_prober final : public health_prober {
public:
    std::vector<std::string> healthy;
    std::vector<probe_request> seen;
    task<probe_result> probe(probe_request r, std::stop_token) override {
        seen.push_back(r);
        const bool ok = std::find(healthy.begin(), healthy.end(), r.host) != healthy.end();
        co_return probe_result{ok ? health_status::healthy : health_status::critical, ok ? "HTTP 200" : "connection refused"};
    }
};

struct fixture {
    testing::fake_clock clock;
    testing::memory_store store;
    class registry reg{clock, store};
    manifest_unpacker unpacker;
    fake_containers containers;
    fake_prober prober;
    std::optional<deployer> d;

    fixture() {
        REQUIRE(test::run_now(reg.open()).ok());
        d.emplace(reg, clock, store, unpacker, deployer_options{});
        d->use_containers(containers, &prober);
        manifest("1.0.0");
    }
    ~fixture() { shut(); }

    void shut() {
        if (!d) return;
        async_scope stopping;
        stopping.spawn(d->shutdown());
        CHECK(stopping.active() == 0);
        d.reset();
    }

    void manifest(std::string version) {
        auto m = parse_package_manifest(R"(
name: web
version: )" + version + R"(
service:
  type: container
  ports:
    - {name: http, port: 8080, protocol: http}
container:
  image: localhost/web:1
  command: [httpd, -f, -p, "8080"]
  env: {MODE: test}
health:
  check: http
  path: /health
  interval: 1s
  timeout: 500ms
  deadline: 3s
)");
        REQUIRE(m.ok());
        unpacker.manifest = *m;
    }

    result<deploy_outcome> deployed() {
        deploy_request r;
        r.archive = "/tmp/web.tar.gz";
        r.target = "containers";
        test::started<result<deploy_outcome>> running(d->deploy(r, {}));
        for (int i = 0; i < 100 && !running.done(); ++i) clock.advance(milliseconds(100));
        REQUIRE(running.done());
        return std::move(running.get());
    }

    template <typename T>
    T finished(task<T> t) {
        test::started<T> running(std::move(t));
        for (int i = 0; i < 100 && !running.done(); ++i) clock.advance(milliseconds(100));
        REQUIRE(running.done());
        return std::move(running.get());
    }
};

}  // namespace

TEST_CASE("container manifest: the container section, the checks, and every problem named by its field") {
    auto m = parse_package_manifest(R"(
name: web
version: 1.0.0
service:
  type: container
  ports: [{name: http, port: 8080}, {name: admin, port: 9090}]
container:
  image: localhost/web:1
  command: [httpd, -f]
  env: {A: "1"}
  labels: {team: web}
  limits: {memory_bytes: 67108864, cpus: 0.5, pids: 64}
health:
  check: tcp
  port: admin
)");
    REQUIRE(m.ok());
    CHECK(m->is_container());
    REQUIRE(m->container);
    CHECK(m->container->image == "localhost/web:1");
    CHECK(m->container->command == std::vector<std::string>{"httpd", "-f"});
    CHECK(m->container->env.at("A") == "1");
    CHECK(m->container->labels.at("team") == "web");
    CHECK(m->container->memory_bytes == std::optional<std::uint64_t>(67108864));
    CHECK(m->container->cpus == std::optional<double>(0.5));
    CHECK(m->container->pids == std::optional<std::int64_t>(64));
    CHECK(m->container->check == container_check::tcp);
    CHECK(m->container->check_port == "admin");
    CHECK(m->source.find("localhost/web:1") != std::string::npos);

    const auto problems = check_package_manifest(R"(
name: web
version: 1.0.0
service:
  type: container
  ports: [{name: http, port: 8080}]
container:
  command: "httpd"
  env: {"1BAD": x}
  labels: {io.registry.lease: "7"}
  limits: {memory_bytes: 10, cpus: lots}
  privileged: true
requires: {commands: [sh]}
health:
  script: scripts/health.sh
  check: http
  port: admin
  path: nope
)");
    for (const auto& p : problems) INFO(p);
    CHECK(contains(problems, "container.image: is required (or container.preset)"));
    CHECK(contains(problems, "container.command: must be a list"));
    CHECK(contains(problems, "container.env.1BAD: must be a variable name of [A-Za-z0-9_], not starting with a digit"));
    CHECK(contains(problems, "container.labels.io.registry.lease: io.registry.* labels are the registry's"));
    CHECK(contains(problems, "container.limits.memory_bytes: must be an integer of at least 4194304 (4 MiB)"));
    CHECK(contains(problems, "container.limits.cpus: must be a number 0.01-1024"));
    CHECK(contains(problems, "container.privileged: unknown field"));
    CHECK(contains(problems, "requires: a container package needs nothing on a host: what it needs is in its image"));
    CHECK(contains(problems, "health.script: a container package has no health script (it would run on the host, not "
                             "in the container): use health.check http or tcp"));
    CHECK(contains(problems, "health.port: no port named 'admin' in service.ports"));
    CHECK(contains(problems, "health.path: must be a path starting with '/', without spaces or control characters"));

    CHECK(contains(check_package_manifest("name: a\nversion: '1'\nservice: {type: container}\n"),
                   "container: is required for service.type container"));
    CHECK(contains(check_package_manifest("name: a\nversion: '1'\nservice: {type: managed_process}\ncontainer: {image: x}\n"),
                   "container: only a package of service.type container has one"));
    const auto systemd = check_package_manifest("name: a\nversion: '1'\nservice: {type: systemd}\n");
    CHECK(contains(systemd, "service.type: systemd packages cannot be deployed: installing a unit needs root on the "
                            "target and the package format has no unit to install; use managed_process (start.sh, "
                            "stop.sh) or container"));
}

TEST_CASE("container deploy: registered with the container's endpoints once its http check passes, the lease renewed") {
    fixture f;
    f.prober.healthy = {"10.88.0.1"};
    auto out = f.deployed();
    REQUIRE(out.ok());
    CHECK(out->instance_id == "web.containers");
    CHECK(out->container_id == "c1");
    CHECK(out->node == "node-a");
    const auto& launched = f.containers.live.at("c1").launch;
    CHECK(launched.spec.image == "localhost/web:1");
    CHECK(launched.spec.env.at("MODE") == "test");
    CHECK(launched.labels.at("registryd.deploy.instance") == "web.containers");
    CHECK(launched.ttl >= seconds(300));
    REQUIRE_FALSE(f.prober.seen.empty());
    CHECK(f.prober.seen.back().kind == check_kind::http);
    CHECK(f.prober.seen.back().port == 8080);
    CHECK(f.prober.seen.back().target == "/health");

    auto s = f.reg.find("web.containers");
    REQUIRE(s);
    CHECK(s->state == service_state::running);
    CHECK(s->execution.kind == execution_kind::container);
    CHECK(s->execution.container_id == "c1");
    CHECK(s->execution.image == "localhost/web:1");
    REQUIRE(s->endpoints.size() == 1);
    CHECK(s->endpoints[0].address == "10.88.0.1");
    CHECK(s->endpoints[0].port == 8080);

    // The health loop renews the container's lease at the interval.
    f.containers.log.clear();
    f.clock.advance(milliseconds(1000));
    CHECK(contains(f.containers.log, "renew c1"));

    // A container that stops is critical: the instance fails.
    f.containers.live.at("c1").running = false;
    f.clock.advance(milliseconds(1000));
    CHECK(f.reg.find("web.containers")->state == service_state::failed);
}

TEST_CASE("container deploy: a first version that fails its gate is removed and never registered") {
    fixture f;  // nothing answers
    auto out = f.deployed();
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::deployment_failed);
    CHECK(out.err().message == "health check did not pass within 3s: connection refused; its container was removed");
    CHECK(f.containers.live.empty());
    CHECK_FALSE(f.reg.find("web.containers"));

    // A container that exits fails the gate at once.
    f.containers.refuse.reset();
    f.prober.healthy.clear();
    deploy_request r;
    r.archive = "/tmp/web.tar.gz";
    r.target = "containers";
    auto exits = f.finished(f.d->deploy(r, [&](const progress& p) {
        if (p.at == stage::starting && !f.containers.live.empty()) f.containers.live.begin()->second.running = false;
    }));
    REQUIRE_FALSE(exits.ok());
    CHECK(exits.err().message == "container c2 is exited (1); its container was removed");

    // The policy's (or the manager's) refusal is the deploy's error.
    f.containers.refuse = error{errc::invalid_request, "image: 'localhost/web:1' is not allowed by containers.policy"};
    auto refused = f.deployed();
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.err().code == errc::invalid_request);
}

TEST_CASE("container redeploy: the new container starts beside the old one and replaces it once it passes, a failing one "
          "is removed and the old one kept") {
    fixture f;
    f.prober.healthy = {"10.88.0.1", "10.88.0.2"};
    REQUIRE(f.deployed().ok());

    f.manifest("2.0.0");
    f.containers.log.clear();
    auto v2 = f.deployed();
    REQUIRE(v2.ok());
    CHECK(v2->previous_version == std::optional<std::string>("1.0.0"));
    // run c2 before remove c1
    const auto run2 = std::find(f.containers.log.begin(), f.containers.log.end(), "run c2");
    const auto remove1 = std::find(f.containers.log.begin(), f.containers.log.end(), "remove c1");
    REQUIRE(run2 != f.containers.log.end());
    REQUIRE(remove1 != f.containers.log.end());
    CHECK(run2 < remove1);
    auto s = f.reg.find("web.containers");
    CHECK(s->version == "2.0.0");
    CHECK(s->execution.container_id == "c2");
    CHECK(s->endpoints[0].address == "10.88.0.2");

    // 3.0.0 never answers: removed, 2.0.0 untouched.
    f.manifest("3.0.0");
    test::collector events;
    watch_options w;
    w.snapshot = false;
    events.start(f.reg, w);
    auto v3 = f.deployed();
    REQUIRE_FALSE(v3.ok());
    CHECK(v3.err().code == errc::deployment_failed);
    CHECK(v3.err().message == "health check did not pass within 3s: connection refused; rolled back: version 2.0.0's "
                              "container c2 kept running");
    CHECK(f.containers.live.count("c2") == 1);
    CHECK(f.containers.live.count("c3") == 0);
    s = f.reg.find("web.containers");
    CHECK(s->version == "2.0.0");
    CHECK(s->state == service_state::running);
    const auto types = events.types();
    CHECK(std::count(types.begin(), types.end(), event_type::deployment_rolled_back) == 1);

    // Deploying the current version again is a conflict.
    f.manifest("2.0.0");
    auto again = f.deployed();
    REQUIRE_FALSE(again.ok());
    CHECK(again.err().code == errc::conflict);
}

TEST_CASE("container undeploy and service_action, a restarted deployer adopts the container") {
    fixture f;
    f.prober.healthy = {"10.88.0.1", "10.88.0.2", "10.88.0.3"};
    REQUIRE(f.deployed().ok());

    // stop removes the container; start runs a new one through the gate.
    auto stopped = f.finished(f.d->control("web.containers", service_command::stop, {}));
    REQUIRE(stopped.ok());
    CHECK((*stopped)->state == service_state::stopped);
    CHECK(f.containers.live.empty());
    auto started = f.finished(f.d->control("web.containers", service_command::start, {}));
    REQUIRE(started.ok());
    CHECK((*started)->state == service_state::running);
    CHECK((*started)->execution.container_id == "c2");
    CHECK((*started)->endpoints[0].address == "10.88.0.2");

    // registryd restarts: the deployment is loaded, its container adopted.
    f.shut();
    f.d.emplace(f.reg, f.clock, f.store, f.unpacker, deployer_options{});
    f.d->use_containers(f.containers, &f.prober);
    f.containers.log.clear();
    auto opened = f.finished(f.d->open());
    REQUIRE(opened.ok());
    CHECK(*opened == 0);
    f.clock.advance(milliseconds(1000));
    CHECK(contains(f.containers.log, "renew c2"));
    CHECK_FALSE(contains(f.containers.log, "run c3"));

    auto gone = f.finished(f.d->undeploy("web.containers", {}));
    REQUIRE(gone.ok());
    CHECK(f.containers.live.empty());
    CHECK_FALSE(f.reg.find("web.containers"));
    auto again = f.finished(f.d->undeploy("web.containers", {}));
    CHECK(again.err().code == errc::not_found);
}

TEST_CASE("container redeploy of a stopped instance runs the new version, the deployment events tell the stages") {
    fixture f;
    f.prober.healthy = {"10.88.0.1", "10.88.0.2"};
    REQUIRE(f.deployed().ok());
    REQUIRE(f.finished(f.d->control("web.containers", service_command::stop, {})).ok());
    CHECK(f.reg.find("web.containers")->state == service_state::stopped);

    test::collector events;
    watch_options w;
    w.snapshot = false;
    events.start(f.reg, w);
    f.manifest("2.0.0");
    auto v2 = f.deployed();
    REQUIRE(v2.ok());
    auto s = f.reg.find("web.containers");
    CHECK(s->state == service_state::running);
    CHECK(s->version == "2.0.0");
    CHECK(s->execution.container_id == "c2");
    std::vector<std::string> stages;
    for (const auto& e : events.events) {
        if (e->type == event_type::deployment_stage) stages.push_back(e->deployment->stage);
    }
    CHECK(stages == std::vector<std::string>{"checking_requirements", "starting", "health_gating"});
    const auto types = events.types();
    CHECK(std::count(types.begin(), types.end(), event_type::deployment_succeeded) == 1);
}

TEST_CASE("container packages: the wrong target, and no container engine") {
    fixture f;
    deploy_request r;
    r.archive = "/tmp/web.tar.gz";
    auto wrong = f.finished(f.d->deploy(r, {}));
    REQUIRE_FALSE(wrong.ok());
    CHECK(wrong.err().code == errc::not_found);  // no target 'local' in this fixture

    f.shut();
    f.d.emplace(f.reg, f.clock, f.store, f.unpacker, deployer_options{});
    CHECK_FALSE(f.d->has_target("containers"));
    auto none = f.deployed();
    REQUIRE_FALSE(none.ok());
    CHECK(none.err().code == errc::unavailable);
}
