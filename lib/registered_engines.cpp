#include <registry/registered_engines.hpp>

#include <set>

namespace registry {

struct registered_engines::shared {
    container_manager* containers = nullptr;  // null once the watcher is gone
    std::map<std::string, engine_declaration, std::less<>> added;  // the nodes it added, by name

    bool is_configured(const std::string& name) const {
        if (added.contains(name)) return false;
        for (const auto& n : containers->nodes()) {
            if (n.name == name) return true;
        }
        return false;
    }

    // The registration rule.
    std::optional<error> check(const registration& r) const {
        auto declared = read_engine_declaration(r.service);
        if (!declared) return declared.err();
        if (!*declared || !containers) return std::nullopt;
        const std::string& name = (*declared)->name;
        if (is_configured(name)) {
            return error{errc::conflict, "service.instance_id: '" + name +
                                             "' is the name of a container engine configured on this server"};
        }
        return std::nullopt;
    }
};

registered_engines::registered_engines(registry& reg, container_manager& containers, engine_connector& connector,
                                       problem_handler on_problem)
    : reg_(reg), containers_(containers), connector_(connector), on_problem_(std::move(on_problem)),
      shared_(std::make_shared<shared>()) {
    shared_->containers = &containers;
    reg_.add_registration_rule(
        [s = shared_](const registration& r) { return s->check(r); });
}

registered_engines::~registered_engines() { shared_->containers = nullptr; }

std::vector<std::string> registered_engines::names() const {
    std::vector<std::string> out;
    for (const auto& [name, d] : shared_->added) out.push_back(name);
    return out;
}

void registered_engines::report(const std::string& instance_id, const error& why) const {
    if (on_problem_) on_problem_(instance_id, why);
}

task<void> registered_engines::run(std::stop_token stop) {
    watch_options w;
    w.types = {event_type::service_registered, event_type::endpoint_updated, event_type::service_deregistered};
    w.stop = stop;
    auto events = reg_.watch(std::move(w));
    for (auto it = co_await events.begin(); it != events.end(); co_await ++it) {
        const event_ptr e = *it;
        if (e->type == event_type::registry_loaded) {
            co_await sync_all(e->snapshot);
        } else if (e->type == event_type::service_registered || e->type == event_type::endpoint_updated) {
            co_await sync(e->service);
        } else if (e->type == event_type::service_deregistered && e->service) {
            co_await leave(e->service->instance_id, "engine left: " + e->reason);
        }
    }
}

// A snapshot (at start, or after a resync): the nodes it added that are no
// longer registered leave, the others are brought up to date.
task<void> registered_engines::sync_all(const std::vector<service_ptr>& services) {
    std::set<std::string, std::less<>> present;
    for (const auto& s : services) present.insert(s->instance_id);
    std::vector<std::string> gone;
    for (const auto& [name, d] : shared_->added) {
        if (!present.contains(name)) gone.push_back(name);
    }
    for (auto& name : gone) co_await leave(std::move(name), "engine left: deregistered");
    for (const auto& s : services) co_await sync(s);
}

task<void> registered_engines::sync(service_ptr service) {
    const std::string& name = service->instance_id;
    auto declared = read_engine_declaration(*service);
    if (!declared) {  // stored before the rule existed: not an engine then
        report(name, declared.err());
        co_await leave(name, "engine left: its declaration is invalid");
        co_return;
    }
    if (!*declared) {
        co_await leave(name, "engine left: no longer declared a container engine");
        co_return;
    }
    engine_declaration d = std::move(**declared);
    auto& added = shared_->added;
    if (auto known = added.find(name); known != added.end()) {
        if (known->second.endpoint == d.endpoint) {
            if (known->second.capacity != d.capacity) {
                auto resized = containers_.set_capacity(name, d.capacity);
                if (resized) known->second.capacity = d.capacity;
            }
            co_return;
        }
        co_await leave(name, "engine left: its endpoint changed");
    }
    if (shared_->is_configured(name)) {  // stored before the configuration named it
        report(name, error{errc::conflict, "a container engine named '" + name + "' is configured on this server; "
                                           "the registered one is ignored"});
        co_return;
    }
    auto engine = connector_.connect(d.endpoint);
    if (!engine) {
        report(name, engine.err());
        co_return;
    }
    container_node node{name, d.endpoint, nullptr, d.capacity};
    auto joined = containers_.add_node(std::move(node), std::shared_ptr<container_engine>(std::move(*engine)));
    if (!joined) {
        report(name, joined.err());
        co_return;
    }
    added.emplace(name, std::move(d));
}

task<void> registered_engines::leave(std::string name, std::string reason) {
    auto it = shared_->added.find(name);
    if (it == shared_->added.end()) co_return;
    shared_->added.erase(it);
    auto removed = co_await containers_.remove_node(std::move(name), std::move(reason));
    (void)removed;  // not_found: it was never there
}

}  // namespace registry
