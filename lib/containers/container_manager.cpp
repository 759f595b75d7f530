// container_manager's public calls; the work behind them is in the files
// manager_impl.hpp lists.
#include "container_events.hpp"
#include "manager_impl.hpp"

#include <registry/ownership.hpp>

#include <registry/cancellation.hpp>
#include <registry/registry.hpp>

#include <algorithm>

namespace registry {

using namespace containers;

namespace {

std::string ttl_rule(const container_manager_options& o) {
    return "must be " + std::to_string(o.min_ttl.count()) + "-" + std::to_string(o.max_ttl.count());
}

}  // namespace

result<std::pair<container_ptr, container_manager::impl::node_ptr>> container_manager::impl::locate(
    std::string_view container_id) const {
    auto c = book.find(container_id);
    if (!c) return unexpected{not_managed(container_id)};
    node_ptr n = pool.find(c->engine);
    if (!n) {
        return fail(errc::unavailable,
                    "container '" + c->container_id + "' is on engine '" + c->engine + "', which is not configured");
    }
    return std::pair{std::move(c), n};
}

void container_manager::impl::watch_exit(const container_ptr& c) {
    node_ptr n = pool.find(c->engine);
    if (n && !stopping.stop_requested()) work.spawn(wait_for_exit(n, c->lease_id, c->container_id));
}

task<void> container_manager::impl::wait_for_exit(node_ptr n, std::uint64_t lease_id, std::string container_id) {
    result<int> code = not_yet();
    try {
        code = co_await n->cfg.engine->wait(container_id, n->token());
    } catch (const operation_cancelled&) {
        co_return;
    }
    // An engine gone is the heartbeat's business; a container removed meanwhile is no news.
    if (!code || n->left) co_return;
    result<container_info> info = not_yet();
    try {
        info = co_await n->cfg.engine->inspect(container_id, n->token());
    } catch (const operation_cancelled&) {
        co_return;
    }
    if (n->left) co_return;
    auto c = book.current(lease_id);
    if (!c || c->container_id != container_id || c->state != managed_state::running) co_return;
    auto next = std::make_shared<managed_container>(*c);
    next->state = managed_state::exited;
    next->exit_code = *code;
    if (info) take_run_state(*next, info->state);
    auto events = only(state_changed(next, c->state));
    auto done = co_await book.put(next, std::move(events), "container exit");
    (void)done;  // a failed store makes the registry unavailable; nothing more to do here
}

container_manager::container_manager(class registry& reg, class clock& clk, class store& st,
                                     std::vector<container_node> nodes, container_manager_options options)
    : impl_(std::make_unique<impl>(reg, clk, st, std::move(nodes), std::move(options))) {}

container_manager::~container_manager() = default;

const container_manager_options& container_manager::options() const noexcept { return impl_->opt; }

std::map<std::string, std::string> container_manager::hold_labels(std::string_view holder, time_point deadline) const {
    return {{std::string(container_labels::instance), impl_->opt.instance_id},
            {std::string(container_labels::holder), std::string(holder)},
            {std::string(container_labels::expires), std::to_string(ms(deadline))}};
}

result<void> container_manager::hold(std::string_view engine, std::string_view container_id, time_point deadline) {
    auto& m = *impl_;
    const containers::node_ptr n = m.pool.find(engine);
    if (!n) return fail(errc::not_found, "no engine '" + std::string(engine) + "'");
    if (!n->online) return fail(errc::unavailable, "engine '" + std::string(engine) + "' is offline");
    m.book.held().insert_or_assign(containers::held_key{engine, container_id}, containers::held_slot{deadline});
    return {};
}

void container_manager::release(std::string_view engine, std::string_view container_id) {
    impl_->book.held().erase(containers::held_key{engine, container_id});
}

std::vector<held_container> container_manager::held() const {
    std::vector<held_container> out;
    for (const auto& [key, slot] : impl_->book.held()) out.push_back({key.first, key.second, slot.expires_at});
    return out;
}

bool container_manager::online(std::string_view engine) const {
    const containers::node_ptr n = impl_->pool.find(engine);
    return n && n->online;
}

task<result<void>> container_manager::open() {
    auto& m = *impl_;
    auto leases = co_await m.book.open(m.st);
    if (!leases) co_return leases;
    co_return co_await m.queue.open(m.st);
}

task<void> container_manager::run(std::stop_token stop) {
    auto& m = *impl_;
    m.stopping = stop;
    m.running = true;
    for (const auto& n : m.pool.all()) m.start_node(n);
    m.work.spawn(m.reaper());
    // Queued creates end when the manager stops, not after its work has.
    auto fail_queued = [&m] {
        m.queue.fail_all(error{errc::unavailable, "the container manager is stopping (registryd shutting down)"});
    };
    {
        std::stop_callback on_stop(stop, fail_queued);
        co_await m.work.join();
    }
    fail_queued();
}

result<void> container_manager::apply_preset(container_request& request) const {
    if (request.preset) {
        auto it = impl_->opt.presets.find(*request.preset);
        if (it == impl_->opt.presets.end()) {
            std::string known;
            for (const auto& [name, p] : impl_->opt.presets) known += (known.empty() ? "" : ", ") + name;
            return fail_field("preset", "no preset '" + *request.preset + "' (configured: " +
                                            (known.empty() ? std::string("none") : known) + ")");
        }
        const container_preset& p = it->second;
        auto& spec = request.spec;
        if (spec.image.empty()) spec.image = p.image;
        if (spec.command.empty()) spec.command = p.command;
        if (!spec.limits.memory_bytes) spec.limits.memory_bytes = p.limits.memory_bytes;
        if (!spec.limits.cpus) spec.limits.cpus = p.limits.cpus;
        if (!spec.limits.pids) spec.limits.pids = p.limits.pids;
        request.preset.reset();
    }
    if (request.spec.image.empty()) return fail_field("image", "is required (or a preset)");
    return {};
}

task<result<container_ptr>> container_manager::create(container_request request, queue_listener listener) {
    auto& m = *impl_;
    auto preset = apply_preset(request);
    if (!preset) co_return unexpected{preset.err()};
    if (auto refused = enforce(m.opt.policy, request.spec); !refused.empty()) {
        co_return unexpected{invalid_fields(std::move(refused))};
    }
    const seconds ttl = request.ttl.value_or(m.opt.default_ttl);
    if (ttl < m.opt.min_ttl || ttl > m.opt.max_ttl) co_return fail_field("ttl_seconds", ttl_rule(m.opt));
    for (const auto& [key, value] : request.spec.labels) {
        if (key.starts_with(container_labels::reserved_prefix)) {
            co_return fail_field("labels." + key, "the prefix '" + std::string(container_labels::reserved_prefix) +
                                                      "' is reserved for the registry");
        }
    }
    auto chosen = m.pool.schedule(request.engine, m.book);
    if (chosen) {
        ++(*chosen)->creating;
    } else if (chosen.err().code == errc::limit_exceeded && request.queue) {
        if (m.stopping.stop_requested()) co_return fail(errc::unavailable, "the container manager is stopping");
        auto queued = co_await m.queue.enqueue(request, std::move(listener));
        if (!queued) co_return unexpected{queued.err()};
        chosen = co_await m.queue.wait(std::move(*queued));  // a slot taken for it, or why not
    }
    if (!chosen) co_return unexpected{chosen.err()};
    const containers::node_ptr np = std::move(*chosen);  // alive until create is done, even if the node leaves
    containers::node& n = *np;
    // Its slot, until the container is recorded (or the create fails: then
    // the slot may go to a queued create).
    containers::creating_slot slot(np, m.queue);

    // The lease id is durable before any container carries it.
    auto reserved = co_await m.book.reserve_lease_id();
    if (!reserved) co_return unexpected{reserved.err()};
    const std::uint64_t lease_id = *reserved;

    const time_point now = m.clk.now();
    const time_point expires = now + ttl;
    container_spec spec = std::move(request.spec);
    auto user_labels = spec.labels;
    spec.labels[std::string(container_labels::instance)] = m.opt.instance_id;
    spec.labels[std::string(container_labels::lease)] = std::to_string(lease_id);
    spec.labels[std::string(container_labels::expires)] = std::to_string(ms(expires));
    auto c = std::make_shared<managed_container>();
    c->lease_id = lease_id;
    c->engine = n.cfg.name;
    c->name = spec.name;
    c->image = spec.image;
    c->ttl = ttl;
    c->created_at = now;
    c->expires_at = expires;
    c->state = managed_state::created;
    c->command = spec.command;
    c->limits = spec.limits;
    c->labels = std::move(user_labels);
    c->owner = std::move(request.owner);

    auto created = co_await n.cfg.engine->create(std::move(spec), m.stopping);
    if (!created) co_return unexpected{created.err()};
    if (n.left) {  // its labels get it adopted if the engine comes back
        co_return fail(errc::unavailable, "engine '" + n.cfg.name + "' left while the container was created");
    }
    c->container_id = std::move(*created);
    if (c->name.empty()) {
        auto info = co_await n.cfg.engine->inspect(c->container_id, m.stopping);
        if (info) c->name = info->name;
    }
    auto created_events = only(state_changed(c, std::nullopt));
    slot.release();  // counted in the node's load from the put on
    auto recorded = co_await m.book.put(c, std::move(created_events), "container");
    if (!recorded) co_return unexpected{recorded.err()};

    auto started = co_await n.cfg.engine->start(c->container_id, m.stopping);
    std::optional<time_point> started_at;
    if (started) {
        auto info = co_await n.cfg.engine->inspect(c->container_id, m.stopping);
        if (info) started_at = info->state.started_at;
    }
    auto now_c = m.book.current(lease_id);
    if (!now_c) co_return fail(errc::unavailable, "engine '" + n.cfg.name + "' went offline");
    if (!started) {
        // Not left behind half made: the lease ends with the failed start.
        auto removed = co_await n.cfg.engine->remove(c->container_id, true, m.stopping);
        (void)removed;
        auto gone = with_state(now_c, managed_state::removed);
        auto events = only(state_changed(gone, now_c->state, "start failed"));
        auto dropped = co_await m.book.drop(lease_id, std::move(events), "container");
        (void)dropped;
        co_return unexpected{started.err()};
    }
    if (now_c->state != managed_state::created) co_return now_c;  // exited or removed already
    auto running = std::make_shared<managed_container>(*now_c);
    running->state = managed_state::running;
    running->started_at = started_at;
    auto running_events = only(state_changed(running, managed_state::created));
    auto written = co_await m.book.put(running, std::move(running_events), "container");
    if (!written) co_return unexpected{written.err()};
    m.watch_exit(running);
    co_return container_ptr(running);
}

container_ptr container_manager::find(std::string_view container_id) const {
    return impl_->book.find(container_id);
}

std::vector<container_ptr> container_manager::list() const {
    std::vector<container_ptr> out;
    for (const auto& [id, slot] : impl_->book.slots()) out.push_back(slot.c);
    return out;
}

std::vector<node_status> container_manager::nodes() const {
    std::vector<node_status> out;
    for (const auto& n : impl_->pool.all()) {
        out.push_back(node_status{n->cfg.name, n->cfg.endpoint, n->cfg.capacity, n->online,
                                  impl_->book.load(n->cfg.name), n->last_heartbeat});
    }
    return out;
}

result<void> container_manager::add_node(container_node node, std::shared_ptr<container_engine> engine) {
    auto& m = *impl_;
    if (m.pool.find(node.name)) return fail(errc::conflict, "an engine named '" + node.name + "' exists already");
    if (!engine && !node.engine) return fail(errc::invalid_request, "engine '" + node.name + "': no engine client");
    auto n = std::make_shared<containers::node>(std::move(node), std::move(engine));
    m.pool.add(n);
    if (m.running) m.start_node(n);
    return {};
}

task<result<void>> container_manager::remove_node(std::string name, std::string reason) {
    auto& m = *impl_;
    const containers::node_ptr n = m.pool.find(name);
    if (!n) co_return fail(errc::not_found, "no engine '" + name + "'");
    m.pool.erase(n);
    n->left = true;
    n->leaving.request_stop();
    m.queue.wake();  // the creates queued for it fail
    co_await m.go_offline(*n, std::move(reason));
    co_return result<void>{};
}

result<void> container_manager::set_capacity(std::string_view name, std::size_t capacity) {
    const containers::node_ptr n = impl_->pool.find(name);
    if (!n) return fail(errc::not_found, "no engine '" + std::string(name) + "'");
    if (capacity == 0) return fail(errc::invalid_request, "capacity: must be at least 1");
    n->cfg.capacity = capacity;
    impl_->queue.wake();
    return {};
}

std::vector<queued_create> container_manager::queued() const { return impl_->queue.list(); }

result<void> container_manager::cancel_queued(std::string_view queue_id, const identity& by) {
    return impl_->queue.cancel(queue_id, by);
}

task<result<container_ptr>> container_manager::stop(std::string_view container_id, seconds grace,
                                                    const identity& by) {
    auto& m = *impl_;
    auto located = m.locate(container_id);
    if (!located) co_return unexpected{located.err()};
    const container_ptr c = located->first;
    if (auto refused = check_owner(by, c->owner, "stop", "container", c->container_id)) {
        co_return unexpected{std::move(*refused)};
    }
    const auto n = located->second;
    // Sampled before the stop (its figures go with it) and recorded at once:
    // the exit the waiter records then carries it.
    const resource_usage usage = co_await m.sampled(*n, c);
    if (auto now_c = m.book.current(c->lease_id); now_c && now_c->usage != usage) {
        auto with_usage = std::make_shared<managed_container>(*now_c);
        with_usage->usage = usage;
        std::vector<std::shared_ptr<event>> no_events;
        auto kept = co_await m.book.put(with_usage, std::move(no_events), "container usage");
        (void)kept;  // informational
    }
    auto stopped = co_await n->cfg.engine->stop(c->container_id, grace, m.stopping);
    if (!stopped) co_return unexpected{stopped.err()};
    auto now_c = m.book.current(c->lease_id);
    if (!now_c) co_return fail(errc::not_found, "container '" + c->container_id + "' is no longer managed");
    if (now_c->state != managed_state::running && now_c->state != managed_state::created) co_return now_c;
    // The waiter records the exit code; if it has not yet, ask.
    auto info = co_await n->cfg.engine->inspect(now_c->container_id, m.stopping);
    now_c = m.book.current(c->lease_id);
    if (!now_c) co_return fail(errc::not_found, "container '" + c->container_id + "' is no longer managed");
    if (!info || now_c->state == managed_state::exited) co_return now_c;
    auto next = std::make_shared<managed_container>(*now_c);
    next->state = managed_state::exited;
    next->exit_code = info->state.exit_code;
    take_run_state(*next, info->state);
    auto events = only(state_changed(next, now_c->state, "stopped"));
    auto written = co_await m.book.put(next, std::move(events), "container stop");
    if (!written) co_return unexpected{written.err()};
    co_return container_ptr(next);
}

task<result<container_ptr>> container_manager::remove(std::string_view container_id, bool force,
                                                      const identity& by) {
    auto& m = *impl_;
    auto located = m.locate(container_id);
    if (!located) co_return unexpected{located.err()};
    const container_ptr c = located->first;
    if (auto refused = check_owner(by, c->owner, "remove", "container", c->container_id)) {
        co_return unexpected{std::move(*refused)};
    }
    const auto n = located->second;
    const resource_usage usage = co_await m.sampled(*n, c);  // before the removal: its figures go with it
    auto removed = co_await n->cfg.engine->remove(c->container_id, force, m.stopping);
    if (!removed && removed.err().code != errc::not_found) co_return unexpected{removed.err()};
    auto now_c = m.book.current(c->lease_id);
    if (!now_c) co_return fail(errc::not_found, "container '" + c->container_id + "' is no longer managed");
    auto gone = with_usage_of(with_state(now_c, managed_state::removed), usage);
    auto events = only(state_changed(gone, now_c->state, "removed"));
    auto dropped = co_await m.book.drop(c->lease_id, std::move(events), "container removal");
    if (!dropped) co_return unexpected{dropped.err()};
    co_return container_ptr(gone);
}

task<result<container_ptr>> container_manager::extend(std::string_view container_id, std::optional<seconds> ttl,
                                                      const identity& by) {
    auto& m = *impl_;
    auto c = find(container_id);
    if (!c) co_return unexpected{not_managed(container_id)};
    if (auto refused = check_owner(by, c->owner, "extend", "container", c->container_id)) {
        co_return unexpected{std::move(*refused)};
    }
    const seconds t = ttl.value_or(c->ttl);
    if (t < m.opt.min_ttl || t > m.opt.max_ttl) co_return fail_field("ttl_seconds", ttl_rule(m.opt));
    if (m.book.slots()[c->lease_id].reaping || c->expires_at <= m.clk.now()) {
        co_return fail(errc::lease_not_found, "the lease of container '" + c->container_id + "' has expired");
    }
    auto next = std::make_shared<managed_container>(*c);
    next->ttl = t;
    next->expires_at = m.clk.now() + t;
    std::vector<std::shared_ptr<event>> no_events;
    auto written = co_await m.book.put(next, std::move(no_events), "lease renewal");
    if (!written) co_return unexpected{written.err()};
    co_return container_ptr(next);
}

}  // namespace registry
