// The containers module (docs/protocol.md, "Containers"): each action's
// params, reader and handler, one container_manager call and a response.
// Log follows and image pulls answer with a subscription id of their own and
// stream their events under it. The embedder registers it
// (protocol/containers.hpp) when it has a container manager.
#include "actions.hpp"

#include "../request_context.hpp"
#include "../server_impl.hpp"
#include "codec/container_record.hpp"
#include "codec/time.hpp"
#include "codec/utf8.hpp"

#include <registry/container_manager.hpp>
#include <registry/protocol/containers.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace registry::protocol {

namespace {

struct container_create_params {
    static constexpr std::string_view action = "container_create";
    container_request request;
};

struct container_cancel_queued_params {
    static constexpr std::string_view action = "container_cancel_queued";
    std::string queue_id;
};

struct container_list_params {
    static constexpr std::string_view action = "container_list";
    std::optional<std::string> engine;
    std::optional<managed_state> state;
};

struct container_get_params {
    static constexpr std::string_view action = "container_get";
    std::string container_id;
};

struct container_logs_params {
    static constexpr std::string_view action = "container_logs";
    std::string container_id;
    std::optional<std::uint64_t> tail;  // lines
    bool follow = false;
};

struct container_stop_params {
    static constexpr std::string_view action = "container_stop";
    std::string container_id;
    std::optional<std::uint64_t> grace_seconds;
};

struct container_remove_params {
    static constexpr std::string_view action = "container_remove";
    std::string container_id;
    bool force = false;
};

struct container_extend_params {
    static constexpr std::string_view action = "container_extend";
    std::string container_id;
    std::optional<seconds> ttl;
};

struct image_pull_params {
    static constexpr std::string_view action = "image_pull";
    std::string reference;
    std::optional<std::string> engine;
};

struct list_nodes_params {
    static constexpr std::string_view action = "list_nodes";
};

}  // namespace

}  // namespace registry::protocol

namespace registry::detail {

using namespace protocol;  // the params types

constexpr std::uint64_t min_memory_bytes = 6 * 1024 * 1024;  // Docker's and Podman's floor

static bool read(decoder& d, dom::element e, const path& at, container_limits& out) {
    static constexpr std::string_view names[] = {"memory_bytes", "cpus", "pids"};
    members m{at, names};
    std::optional<std::uint64_t> pids;
    if (!open(d, e, m) || !optional(d, m, "memory_bytes", out.memory_bytes) || !optional(d, m, "cpus", out.cpus) ||
        !optional(d, m, "pids", pids)) {
        return false;
    }
    if (out.memory_bytes && *out.memory_bytes < min_memory_bytes) {
        return d.fail(at.member("memory_bytes"), "must be at least 6291456 (6 MiB)");
    }
    if (out.cpus && !(*out.cpus > 0 && *out.cpus <= 1024)) return d.fail(at.member("cpus"), "must be > 0 and <= 1024");
    if (pids) {
        if (*pids < 1 || *pids > 4194304) return d.fail(at.member("pids"), "must be 1-4194304");
        out.pids = static_cast<std::int64_t>(*pids);
    }
    return true;
}

static bool plain_text(std::string_view s) {
    return std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) <= 0x20; });
}

static bool container_name(std::string_view s) {
    if (s.empty() || s.size() > 128 || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    });
}

static bool check_image(decoder& d, const path& at, const std::string& image) {
    if (image.empty() || image.size() > 255 || !plain_text(image)) {
        return d.fail(at, "must be 1-255 characters without whitespace");
    }
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, container_create_params& p) {
    static constexpr std::string_view names[] = {"image",   "name",             "command",     "env",
                                                 "labels",  "limits",           "network",     "read_only_rootfs",
                                                 "ttl_seconds", "engine",       "preset",      "queue"};
    members m{at, names};
    auto& r = p.request;
    auto& spec = r.spec;
    const bool ok = open(d, e, m) && optional(d, m, "preset", r.preset) &&
                    (r.preset ? optional(d, m, "image", spec.image) : required(d, m, "image", spec.image)) &&
                    optional(d, m, "name", spec.name) &&
                    optional(d, m, "command", spec.command) && optional(d, m, "env", spec.env) &&
                    optional(d, m, "labels", spec.labels) && optional(d, m, "limits", spec.limits) &&
                    optional(d, m, "network", spec.network) &&
                    optional(d, m, "read_only_rootfs", spec.read_only_rootfs) && optional(d, m, "ttl_seconds", r.ttl) &&
                    optional(d, m, "engine", r.engine) && optional(d, m, "queue", r.queue);
    if (!ok || (m.get("image") && !check_image(d, at.member("image"), spec.image))) return false;
    if (m.get("name") && !container_name(spec.name)) {
        return d.fail(at.member("name"), "must be 1-128 characters of [A-Za-z0-9_.-], starting with a letter or digit");
    }
    if (spec.command.size() > 256) return d.fail(at.member("command"), "at most 256 entries");
    if (spec.env.size() > 256) return d.fail(at.member("env"), "at most 256 variables");
    for (const auto& [key, value] : spec.env) {
        if (key.empty() || key.find('=') != std::string::npos) {
            return d.fail(at.member("env").member(key), "a name must be non-empty and without '='");
        }
    }
    if (spec.labels.size() > 64) return d.fail(at.member("labels"), "at most 64 labels");
    for (const auto& [key, value] : spec.labels) {
        if (key.empty()) return d.fail(at.member("labels"), "a label name must be non-empty");
    }
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, container_cancel_queued_params& p) {
    static constexpr std::string_view names[] = {"queue_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "queue_id", p.queue_id);
}

static bool read_params(decoder& d, const params_element& e, const path& at, container_list_params& p) {
    static constexpr std::string_view names[] = {"engine", "state"};
    members m{at, names};
    return open(d, e, m) && optional(d, m, "engine", p.engine) && optional(d, m, "state", p.state);
}

static bool read_params(decoder& d, const params_element& e, const path& at, container_get_params& p) {
    static constexpr std::string_view names[] = {"container_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "container_id", p.container_id);
}

static bool read_params(decoder& d, const params_element& e, const path& at, container_logs_params& p) {
    static constexpr std::string_view names[] = {"container_id", "tail", "follow"};
    members m{at, names};
    if (!open(d, e, m) || !required(d, m, "container_id", p.container_id) || !optional(d, m, "tail", p.tail) ||
        !optional(d, m, "follow", p.follow)) {
        return false;
    }
    if (p.tail && *p.tail > 100000) return d.fail(at.member("tail"), "must be 0-100000");
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, container_stop_params& p) {
    static constexpr std::string_view names[] = {"container_id", "grace_seconds"};
    members m{at, names};
    if (!open(d, e, m) || !required(d, m, "container_id", p.container_id) ||
        !optional(d, m, "grace_seconds", p.grace_seconds)) {
        return false;
    }
    if (p.grace_seconds && *p.grace_seconds > 300) return d.fail(at.member("grace_seconds"), "must be 0-300");
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, container_remove_params& p) {
    static constexpr std::string_view names[] = {"container_id", "force"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "container_id", p.container_id) && optional(d, m, "force", p.force);
}

static bool read_params(decoder& d, const params_element& e, const path& at, container_extend_params& p) {
    static constexpr std::string_view names[] = {"container_id", "ttl_seconds"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "container_id", p.container_id) && optional(d, m, "ttl_seconds", p.ttl);
}

static bool read_params(decoder& d, const params_element& e, const path& at, image_pull_params& p) {
    static constexpr std::string_view names[] = {"reference", "engine"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "reference", p.reference) && optional(d, m, "engine", p.engine) &&
           check_image(d, at.member("reference"), p.reference);
}

static bool read_params(decoder& d, const params_element& e, const path& at, list_nodes_params&) {
    members m{at, {}};
    return open(d, e, m);
}

}  // namespace registry::detail

namespace registry::protocol {

namespace {

using detail::ms;

struct containers_module final : module {
    containers_module(container_manager& c, class registry& r) : mgr(c), reg(r) {}

    container_manager& mgr;
    class registry& reg;  // the revision of container_list
};

constexpr std::size_t default_tail_lines = 1000;

void write_container_data(detail::json_writer& w, const managed_container& c) {
    w.begin_object().key("container");
    write_container(w, c);
    w.end_object();
}

// {"type":"event","event":"container_queued","request_id":..,"data":{"queue_id":..,"position":..}}
std::string encode_queued(std::string_view request_id, const queued_create& q, std::size_t position) {
    std::string text;
    detail::json_writer w(text);
    w.begin_object()
        .key("type").string("event")
        .key("event").string("container_queued")
        .key("request_id").string(request_id)
        .key("data").begin_object()
        .key("queue_id").string(q.queue_id)
        .key("position").number(position)
        .end_object()
        .end_object();
    return text;
}

task<result<void>> on(containers_module& m, request_context& ctx, container_create_params& p) {
    ctx.set_target(p.request.preset ? "preset " + *p.request.preset : p.request.spec.image);
    p.request.owner = ctx.caller().name;
    // Queued: its position goes to this connection, and the connection
    // closing takes it out of the queue (nobody would learn of the container).
    queue_listener listener;
    if (p.request.queue) {
        listener.on_position = [&ctx](const queued_create& q, std::size_t position) {
            ctx.event(encode_queued(ctx.id(), q, position));
        };
        listener.cancel = ctx.connection_closing();
    }
    auto made = co_await m.mgr.create(std::move(p.request), std::move(listener));
    if (!made) co_return unexpected{made.err()};
    ctx.reply([&](detail::json_writer& w) { write_container_data(w, **made); });
    co_return result<void>{};
}

task<result<void>> on(containers_module& m, request_context& ctx, container_cancel_queued_params& p) {
    ctx.set_target(p.queue_id);
    auto cancelled = m.mgr.cancel_queued(p.queue_id, ctx.caller());
    if (!cancelled) co_return unexpected{cancelled.err()};
    ctx.reply([&](detail::json_writer& w) { w.begin_object().key("queue_id").string(p.queue_id).end_object(); });
    co_return result<void>{};
}

task<result<void>> on(containers_module& m, request_context& ctx, container_list_params& p) {
    auto all = m.mgr.list();
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("revision").number(m.reg.revision()).key("containers").begin_array();
        for (const auto& ct : all) {
            if (p.engine && ct->engine != *p.engine) continue;
            if (p.state && ct->state != *p.state) continue;
            write_container(w, *ct);
        }
        w.end_array().end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(containers_module& m, request_context& ctx, container_get_params& p) {
    auto ct = m.mgr.find(p.container_id);
    if (!ct) co_return fail(errc::not_found, "no managed container '" + p.container_id + "'");
    ct = co_await m.mgr.with_usage(std::move(ct));  // a running one: sampled now
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("container");
        write_container(w, *ct, detail::container_view::full);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(containers_module& m, request_context& ctx, container_logs_params& p) {
    auto ct = m.mgr.find(p.container_id);
    if (!ct) co_return fail(errc::not_found, "no managed container '" + p.container_id + "'");
    std::optional<std::size_t> tail;
    if (p.tail) tail = static_cast<std::size_t>(*p.tail);
    if (p.follow) {
        container_manager* mgr = &m.mgr;
        co_return ctx.stream(
            [&](std::stop_token stop) { return mgr->follow_logs(ct->container_id, tail, std::move(stop)); },
            [&](detail::json_writer& w) { w.key("container_id").string(ct->container_id); });
    }
    auto output = co_await m.mgr.logs(ct->container_id, tail.value_or(default_tail_lines));
    if (!output) co_return unexpected{output.err()};
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("container_id").string(ct->container_id).key("output").begin_array();
        for (const auto& chunk : *output) {
            w.begin_object()
                .key("stream").string(to_string(chunk.stream))
                .key("data").string(detail::valid_utf8(chunk.bytes))
                .end_object();
        }
        w.end_array().end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(containers_module& m, request_context& ctx, container_stop_params& p) {
    ctx.set_target(p.container_id);
    const seconds grace{static_cast<seconds::rep>(p.grace_seconds.value_or(10))};
    auto stopped = co_await m.mgr.stop(p.container_id, grace, ctx.caller());
    if (!stopped) co_return unexpected{stopped.err()};
    ctx.reply([&](detail::json_writer& w) { write_container_data(w, **stopped); });
    co_return result<void>{};
}

task<result<void>> on(containers_module& m, request_context& ctx, container_remove_params& p) {
    ctx.set_target(p.container_id);
    auto removed = co_await m.mgr.remove(p.container_id, p.force, ctx.caller());
    if (!removed) co_return unexpected{removed.err()};
    ctx.reply([&](detail::json_writer& w) { write_container_data(w, **removed); });
    co_return result<void>{};
}

task<result<void>> on(containers_module& m, request_context& ctx, container_extend_params& p) {
    ctx.set_target(p.container_id);
    auto extended = co_await m.mgr.extend(p.container_id, p.ttl, ctx.caller());
    if (!extended) co_return unexpected{extended.err()};
    const managed_container& ct = **extended;
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object()
            .key("lease_id").number(ct.lease_id)
            .key("container_id").string(ct.container_id)
            .key("ttl_seconds").number(ct.ttl.count())
            .key("expires_at_ms").number(ms(ct.expires_at))
            .end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(containers_module& m, request_context& ctx, image_pull_params& p) {
    ctx.set_target(p.reference);
    container_manager* mgr = &m.mgr;
    if (p.engine) {
        const auto nodes = mgr->nodes();
        const bool known = std::any_of(nodes.begin(), nodes.end(), [&](const auto& n) { return n.name == *p.engine; });
        if (!known) co_return fail(errc::not_found, "no engine '" + *p.engine + "'");
    }
    co_return ctx.stream(
        [&](std::stop_token stop) { return mgr->pull_image(p.reference, p.engine, std::move(stop)); },
        [&](detail::json_writer& w) { w.key("reference").string(p.reference); });
}

task<result<void>> on(containers_module& m, request_context& ctx, list_nodes_params&) {
    const auto nodes = m.mgr.nodes();
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("nodes").begin_array();
        for (const auto& n : nodes) {
            w.begin_object()
                .key("name").string(n.name)
                .key("endpoint").string(n.endpoint)
                .key("status").string(n.online ? "online" : "offline")
                .key("capacity").number(n.capacity)
                .key("running").number(n.running)
                .key("last_heartbeat_ms");
            if (n.last_heartbeat) {
                w.number(ms(*n.last_heartbeat));
            } else {
                w.null();
            }
            w.end_object();
        }
        w.end_array().end_object();
    });
    co_return result<void>{};
}

}  // namespace

std::unique_ptr<module> add_container_entries(dispatch_table& t, container_manager* mgr, class registry* reg) {
    std::unique_ptr<containers_module> m;
    if (mgr) m = std::make_unique<containers_module>(*mgr, *reg);
    using M = containers_module;
    using enum permission_family;
    using detail::read_params;
    t.add(make_action<M, container_create_params, &read_params, &on>(containers_write, m.get()));
    t.add(make_action<M, container_stop_params, &read_params, &on>(containers_write, m.get()));
    t.add(make_action<M, container_remove_params, &read_params, &on>(containers_write, m.get()));
    t.add(make_action<M, container_extend_params, &read_params, &on>(containers_write, m.get()));
    t.add(make_action<M, image_pull_params, &read_params, &on>(containers_write, m.get()));
    t.add(make_action<M, container_cancel_queued_params, &read_params, &on>(containers_write, m.get()));
    t.add(make_action<M, container_list_params, &read_params, &on>(containers_read, m.get()));
    t.add(make_action<M, container_get_params, &read_params, &on>(containers_read, m.get()));
    t.add(make_action<M, container_logs_params, &read_params, &on>(containers_read, m.get()));
    t.add(make_action<M, list_nodes_params, &read_params, &on>(containers_read, m.get()));
    return m;
}

void add_container_actions(server& srv, container_manager& mgr) {
    auto& shared = srv.internals();
    shared.own(add_container_entries(shared.actions, &mgr, &srv.reg()));
}

}  // namespace registry::protocol
