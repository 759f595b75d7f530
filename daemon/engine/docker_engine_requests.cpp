#include "engine/docker_engine_requests.hpp"

#include "engine/docker_engine.hpp"
#include "codec/json_writer.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

namespace registryd::docker {

using registry::errc;
using registry::fail;

http_request make_request(std::string method, std::string target, std::string body, std::string content_type,
                          bool upgrade) {
    http_request r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.body = std::move(body);
    r.content_type = std::move(content_type);
    r.upgrade = upgrade;
    return r;
}

std::string id_path(std::string_view id) { return "/containers/" + url_encode(id); }

registry::result<std::string> create_body(const registry::container_spec& spec) {
    if (spec.limits.memory_bytes &&
        *spec.limits.memory_bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return fail(errc::invalid_request, "create: memory limit out of range");
    }
    if (spec.limits.cpus && (!(*spec.limits.cpus > 0) || *spec.limits.cpus > 1e6)) {
        return fail(errc::invalid_request, "create: cpus must be positive");
    }

    std::string body;
    registry::detail::json_writer w(body);
    w.begin_object().key("Image").string(spec.image);
    if (!spec.command.empty()) {
        w.key("Cmd").begin_array();
        for (const auto& c : spec.command) w.string(c);
        w.end_array();
    }
    if (!spec.env.empty()) {
        w.key("Env").begin_array();
        for (const auto& [k, v] : spec.env) w.string(k + "=" + v);
        w.end_array();
    }
    w.key("Labels").begin_object();
    for (const auto& [k, v] : spec.labels) w.key(k).string(v);
    w.end_object();
    w.key("Tty").boolean(false).key("OpenStdin").boolean(false).key("AttachStdin").boolean(false);
    w.key("AttachStdout").boolean(true).key("AttachStderr").boolean(true);
    if (!spec.user.empty()) w.key("User").string(spec.user);

    // Never Privileged, never the host's network or namespaces (NetworkMode
    // "host", PidMode, IpcMode, UTSMode, UsernsMode), never Binds, Mounts or
    // CapAdd: container_spec cannot express them, so nothing here writes them
    // (the container policy relies on it, container_policy.hpp).
    w.key("HostConfig").begin_object();
    if (spec.limits.memory_bytes) w.key("Memory").number(static_cast<std::int64_t>(*spec.limits.memory_bytes));
    if (spec.limits.cpus) w.key("NanoCpus").number(static_cast<std::int64_t>(std::llround(*spec.limits.cpus * 1e9)));
    if (spec.limits.pids) w.key("PidsLimit").number(*spec.limits.pids);
    // The default network is what the engine does without NetworkMode
    // (Docker: "default", i.e. bridge; Podman as root: bridge).
    if (spec.network == registry::container_network::none) w.key("NetworkMode").string("none");
    w.key("ReadonlyRootfs").boolean(spec.read_only_rootfs);
    if (!spec.tmpfs.empty()) {
        w.key("Tmpfs").begin_object();
        for (const auto& [point, options] : spec.tmpfs) w.key(point).string(options);
        w.end_object();
    }
    if (spec.drop_all_capabilities) w.key("CapDrop").begin_array().string("ALL").end_array();
    if (spec.no_new_privileges) w.key("SecurityOpt").begin_array().string("no-new-privileges").end_array();
    w.end_object();
    w.end_object();
    return body;
}

std::string label_filters(const registry::label_selector& labels) {
    std::string filters;
    registry::detail::json_writer w(filters);
    w.begin_object().key("label").begin_array();
    for (const auto& t : labels.terms) w.string(t.value ? t.key + "=" + *t.value : t.key);
    w.end_array().end_object();
    return url_encode(filters);
}

}  // namespace registryd::docker
