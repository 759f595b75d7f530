// The README's embedding example, complete: a registry on sync_wait with the
// testing clock and store. It registers a service, watches the event stream,
// discovers the service and lets its lease run out, and checks each step
// (exit status 1 and a message on the first that does not hold), so the test
// suite runs it as a test and a consumer build proves the installed package.
#include <registry/async_scope.hpp>
#include <registry/registry.hpp>
#include <registry/sync_wait.hpp>
#include <registry/testing/fake_clock.hpp>
#include <registry/testing/memory_store.hpp>

#include <cstdio>
#include <cstdlib>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

namespace {

void expect(bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "embed_registry: %s\n", what);
    std::exit(1);
}

// Collects the event stream's types until `stop` is requested (changes
// only: the periodic bookmarks are left out).
registry::task<void> watch(registry::registry& reg, std::stop_token stop, std::vector<std::string>& seen) {
    registry::watch_options options;
    options.stop = stop;
    auto events = reg.watch(std::move(options));
    for (auto it = co_await events.begin(); it != events.end(); co_await ++it) {
        if ((*it)->type != registry::event_type::bookmark) seen.emplace_back(registry::to_string((*it)->type));
    }
}

registry::task<int> demo() {
    registry::testing::fake_clock clock;    // time moves when we say so
    registry::testing::memory_store store;  // durable as soon as committed
    registry::registry reg(clock, store);
    auto opened = co_await reg.open();
    expect(opened.ok(), "open failed");

    registry::async_scope scope;
    std::stop_source stop;
    std::vector<std::string> seen;
    scope.spawn(reg.run(stop.get_token()));  // lease expiry and bookmarks
    scope.spawn(watch(reg, stop.get_token(), seen));

    registry::registration r;
    r.service.name = "api";
    r.service.endpoints.push_back({"http", "127.0.0.1", 8081, "http"});
    r.ttl = registry::seconds{30};
    auto lease = co_await reg.register_service(r);
    expect(lease.ok(), "register_service failed");
    std::printf("registered %s, lease %llu, revision %llu\n", lease->instance_id.c_str(),
                static_cast<unsigned long long>(lease->lease_id), static_cast<unsigned long long>(lease->revision));

    registry::service_filter api;
    api.name = "api";
    auto found = reg.list(api);
    expect(found.size() == 1 && found[0]->endpoints.at(0).port == 8081, "discovery does not find api:8081");

    clock.advance(registry::seconds{31});  // no keepalive: the lease runs out
    expect(reg.find(lease->instance_id) == nullptr, "the expired instance is still registered");

    stop.request_stop();
    co_await scope.join();
    const std::vector<std::string> want{"registry_loaded", "service_registered", "lease_expired", "service_deregistered"};
    std::string got;
    for (const auto& s : seen) got += s + " ";
    std::printf("events: %s\n", got.c_str());
    expect(seen == want, "the event stream is not: registry_loaded service_registered lease_expired service_deregistered");
    co_return 0;
}

}  // namespace

int main() { return registry::sync_wait(demo()); }
