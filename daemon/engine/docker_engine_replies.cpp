#include "engine/docker_engine_replies.hpp"

#include "engine/docker_engine.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>

namespace registryd::docker {

namespace {

namespace dom = simdjson::dom;
using registry::errc;
using registry::fail;

// An object's members, read leniently: a member that is missing, or of
// another type, reads as empty (the engines omit what does not apply). Reading
// members of what is not an object reads nothing.
class fields {
public:
    fields() = default;
    explicit fields(dom::element e) {
        dom::object o;
        if (e.get_object().get(o) == simdjson::SUCCESS) object_ = o;
    }

    bool is_object() const noexcept { return object_.has_value(); }

    std::optional<dom::element> member(std::string_view key) const {
        dom::element e;
        if (!object_ || object_->at_key(key).get(e) != simdjson::SUCCESS) return std::nullopt;
        return e;
    }

    fields object(std::string_view key) const {
        const auto m = member(key);
        return m ? fields(*m) : fields();
    }

    std::string string(std::string_view key) const {
        const auto m = member(key);
        std::string_view s;
        if (!m || m->get_string().get(s) != simdjson::SUCCESS) return {};
        return std::string(s);
    }

    // Any JSON number, truncated toward zero.
    std::optional<std::int64_t> integer(std::string_view key) const {
        const auto m = member(key);
        if (!m) return std::nullopt;
        switch (m->type()) {
            case dom::element_type::INT64: return m->get_int64().value_unsafe();
            case dom::element_type::UINT64: return static_cast<std::int64_t>(m->get_uint64().value_unsafe());
            case dom::element_type::DOUBLE: {
                const double d = m->get_double().value_unsafe();
                // Outside int64's range (or NaN) the conversion is undefined.
                if (!(d > -9.2e18 && d < 9.2e18)) return std::nullopt;
                return static_cast<std::int64_t>(d);
            }
            default: return std::nullopt;
        }
    }

    bool boolean(std::string_view key) const {
        const auto m = member(key);
        bool b = false;
        return m && m->get_bool().get(b) == simdjson::SUCCESS && b;
    }

    // The strings of an array member (other elements skipped).
    std::vector<std::string> strings(std::string_view key) const {
        std::vector<std::string> out;
        dom::array a;
        if (const auto m = member(key); m && m->get_array().get(a) == simdjson::SUCCESS) {
            for (const dom::element e : a) {
                std::string_view s;
                if (e.get_string().get(s) == simdjson::SUCCESS) out.emplace_back(s);
            }
        }
        return out;
    }

    // The string members of an object member (others skipped).
    std::map<std::string, std::string> labels(std::string_view key) const {
        std::map<std::string, std::string> out;
        dom::object o;
        if (const auto m = member(key); m && m->get_object().get(o) == simdjson::SUCCESS) {
            for (const auto field : o) {
                std::string_view v;
                if (field.value.get_string().get(v) == simdjson::SUCCESS) out.emplace(field.key, v);
            }
        }
        return out;
    }

private:
    std::optional<dom::object> object_;
};

// A parsed document; the parser owns the memory its elements point into.
struct document {
    dom::parser parser;
    dom::element root;
    bool ok = false;

    explicit document(std::string_view text) {
        ok = parser.parse(text.data(), text.size()).get(root) == simdjson::SUCCESS;
    }

    fields object() const { return ok ? fields(root) : fields(); }
};

registry::container_status parse_status(std::string_view s) {
    using registry::container_status;
    if (s == "created" || s == "configured" || s == "initialized") return container_status::created;
    if (s == "running" || s == "stopping") return container_status::running;
    if (s == "paused") return container_status::paused;
    if (s == "restarting") return container_status::restarting;
    if (s == "removing") return container_status::removing;
    if (s == "exited" || s == "stopped") return container_status::exited;
    if (s == "dead") return container_status::dead;
    return container_status::unknown;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// The engine's explanation of a failed request: {"message": "..."} (Docker
// and Podman), else the body itself.
std::string engine_message(const http_response& r) {
    const document doc(r.body);
    if (std::string m = doc.object().string("message"); !m.empty()) return m;
    std::string body(trim(r.body));
    if (body.size() > 512) body = body.substr(0, 512) + "...";
    if (body.empty()) return "HTTP status " + std::to_string(r.status);
    return body;
}

// Podman answers 500 where Docker says 409; its error body names the cause.
errc podman_cause_code(std::string_view body) {
    const document doc(body);
    const std::string cause = doc.object().string("cause");
    if (cause == "container state improper" || cause == "that name is already in use" ||
        cause == "container already exists" || cause == "name or ID already in use") {
        return errc::conflict;
    }
    if (cause == "no such container" || cause == "image not known" || cause == "no such image") return errc::not_found;
    return errc::internal;
}

// A 2xx body that is not the JSON we expected.
registry::unexpected bad_reply(std::string_view what, std::string_view why) {
    return fail(errc::internal, std::string(what) + ": unexpected reply from the container engine: " + std::string(why));
}

// How a message inside an image pull's stream reads: an unknown image, or
// anything else (the registry is unreachable, refuses, ...).
errc pull_error_code(std::string_view message) {
    std::string m(message);
    std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (const char* needle : {"manifest unknown", "not found", "name unknown", "does not exist", "no such image"}) {
        if (m.find(needle) != std::string::npos) return errc::not_found;
    }
    return errc::unavailable;
}

}  // namespace

registry::error engine_error(const http_response& r, std::string_view what) {
    errc code = errc::internal;
    switch (r.status) {
        case 400: code = errc::invalid_request; break;
        case 403:
        case 409: code = errc::conflict; break;
        case 404: code = errc::not_found; break;
        case 500: code = podman_cause_code(r.body); break;
        default: break;
    }
    return registry::error{code, std::string(what) + ": " + engine_message(r)};
}

registry::result<registry::engine_info> read_version(std::string_view body) {
    const document doc(body);
    const fields o = doc.object();
    if (!o.is_object()) return bad_reply("version", "not a JSON object");
    registry::engine_info info;
    info.version = o.string("Version");
    info.api_version = o.string("ApiVersion");
    info.os = o.string("Os");
    info.arch = o.string("Arch");
    dom::array components;
    if (const auto c = o.member("Components"); c && c->get_array().get(components) == simdjson::SUCCESS) {
        if (components.size() > 0) info.name = fields(components.at(0).value_unsafe()).string("Name");
    }
    if (info.name.empty() || info.name == "Engine") info.name = "Docker Engine";
    return info;
}

registry::result<std::string> read_created(std::string_view body, std::string_view what) {
    const document doc(body);
    std::string id = doc.object().string("Id");
    if (id.empty()) return bad_reply(what, "no Id");
    return id;
}

registry::result<registry::container_info> read_inspect(std::string_view body, std::string_view what) {
    const document doc(body);
    const fields o = doc.object();
    if (!o.is_object()) return bad_reply(what, "not a JSON object");

    registry::container_info info;
    info.id = o.string("Id");
    info.name = o.string("Name");
    if (info.name.starts_with('/')) info.name.erase(0, 1);
    info.created = parse_time(o.string("Created"));

    const fields config = o.object("Config");
    info.image = config.string("Image");
    if (info.image.empty()) info.image = o.string("Image");
    info.command = config.strings("Cmd");
    info.labels = config.labels("Labels");
    for (const auto& e : config.strings("Env")) {
        const auto eq = e.find('=');
        if (eq == std::string::npos) {
            info.env.emplace(e, "");
        } else {
            info.env.emplace(e.substr(0, eq), e.substr(eq + 1));
        }
    }

    const fields state = o.object("State");
    info.state.status = parse_status(state.string("Status"));
    info.state.running = state.boolean("Running");
    info.state.exit_code = static_cast<int>(state.integer("ExitCode").value_or(0));
    info.state.oom_killed = state.boolean("OOMKilled");
    info.state.error = state.string("Error");
    info.state.started_at = parse_time(state.string("StartedAt"));
    info.state.finished_at = parse_time(state.string("FinishedAt"));
    // An engine may report a start time for a created container (or keep the
    // last run's finish time while running): only what fits the state counts.
    if (info.state.status == registry::container_status::created) info.state.started_at.reset();
    if (info.state.running) info.state.finished_at.reset();

    const fields host = o.object("HostConfig");
    if (auto m = host.integer("Memory"); m && *m > 0) info.limits.memory_bytes = static_cast<std::uint64_t>(*m);
    if (auto n = host.integer("NanoCpus"); n && *n > 0) {
        info.limits.cpus = static_cast<double>(*n) / 1e9;
    } else if (auto quota = host.integer("CpuQuota"); quota && *quota > 0) {
        const auto period = host.integer("CpuPeriod").value_or(100'000);
        if (period > 0) info.limits.cpus = static_cast<double>(*quota) / static_cast<double>(period);
    }
    if (auto p = host.integer("PidsLimit"); p && *p > 0) info.limits.pids = *p;
    info.network_mode = host.string("NetworkMode");
    info.read_only_rootfs = host.boolean("ReadonlyRootfs");
    info.ip_address = o.object("NetworkSettings").string("IPAddress");
    return info;
}

registry::result<std::vector<registry::container_summary>> read_list(std::string_view body) {
    const document doc(body);
    dom::array a;
    if (!doc.ok || doc.root.get_array().get(a) != simdjson::SUCCESS) {
        return bad_reply("list containers", "not a JSON array");
    }
    std::vector<registry::container_summary> out;
    out.reserve(a.size());
    for (const dom::element e : a) {
        const fields o(e);
        if (!o.is_object()) continue;
        registry::container_summary s;
        s.id = o.string("Id");
        const auto names = o.strings("Names");
        if (!names.empty()) s.name = names.front().starts_with('/') ? names.front().substr(1) : names.front();
        s.image = o.string("Image");
        s.labels = o.labels("Labels");
        s.status = parse_status(o.string("State"));
        s.status_text = o.string("Status");
        if (auto c = o.integer("Created"); c && *c > 0) s.created = registry::time_point(std::chrono::seconds(*c));
        out.push_back(std::move(s));
    }
    return out;
}

registry::result<int> read_wait(std::string_view body, std::string_view what) {
    const document doc(body);
    const fields o = doc.object();
    const auto code = o.integer("StatusCode");
    if (!code) return bad_reply(what, "no StatusCode");
    const std::string error = o.object("Error").string("Message");
    if (!error.empty()) return fail(errc::internal, std::string(what) + ": " + error);
    return static_cast<int>(*code);
}

registry::result<registry::container_stats> read_stats(std::string_view body, std::string_view what) {
    registry::container_stats out;
    // Podman answers a stopped container with an empty body, Docker with a
    // sample read at the zero time: no figures either way.
    if (trim(body).empty()) return out;
    const document doc(body);
    const fields o = doc.object();
    if (!o.is_object()) return bad_reply(what, "not a JSON object");
    if (!parse_time(o.string("read"))) return out;
    auto figure = [](std::optional<std::int64_t> v) -> std::optional<std::uint64_t> {
        if (!v || *v <= 0) return std::nullopt;  // Docker writes 0 for what it does not know
        return static_cast<std::uint64_t>(*v);
    };
    out.cpu_ns = figure(o.object("cpu_stats").object("cpu_usage").integer("total_usage"));
    const fields memory = o.object("memory_stats");
    out.memory_bytes = figure(memory.integer("usage"));
    out.memory_max_bytes = figure(memory.integer("max_usage"));
    return out;
}

registry::result<registry::pull_progress> read_progress(std::string_view line, std::string_view reference) {
    const std::string what = "pull " + std::string(reference);
    const document doc(line);
    const fields o = doc.object();
    if (!o.is_object()) {
        return fail(errc::internal, what + ": unparsable progress line from the container engine: " + std::string(line));
    }
    std::string error = o.string("error");
    if (error.empty()) error = o.object("errorDetail").string("message");
    if (!error.empty()) return fail(pull_error_code(error), what + ": " + error);
    registry::pull_progress p;
    p.id = o.string("id");
    p.status = o.string("status");
    p.progress = o.string("progress");
    const fields detail = o.object("progressDetail");
    if (auto c = detail.integer("current"); c && *c >= 0) p.current = static_cast<std::uint64_t>(*c);
    if (auto t = detail.integer("total"); t && *t > 0) p.total = static_cast<std::uint64_t>(*t);
    return p;
}

}  // namespace registryd::docker
