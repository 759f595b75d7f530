// manifest.yaml, read with yaml-cpp. The reader walks the document once and
// collects every problem with its field path instead of stopping at the first.
#include <registry/deploy/package_manifest.hpp>

#include "registration_rules.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <set>

namespace registry::deploy {

namespace {

constexpr std::size_t max_version = 64;
constexpr std::size_t max_list = 64;
constexpr std::size_t max_text = 4096;

bool is_alnum(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// The registry's own rule for names: package names become service names.
bool valid_name(std::string_view s) { return detail::is_valid_name(s); }

// A version becomes part of a directory name: no '/', no leading '.'.
bool valid_version(std::string_view s) {
    if (s.empty() || s.size() > max_version || !is_alnum(s.front())) return false;
    for (char c : s) {
        if (!is_alnum(c) && c != '.' && c != '_' && c != '-' && c != '+') return false;
    }
    return true;
}

// A path inside the package: relative, no "..", no empty component.
bool valid_relative_path(std::string_view s) {
    if (s.empty() || s.size() > max_text || s.front() == '/') return false;
    std::size_t start = 0;
    while (start <= s.size()) {
        const std::size_t end = std::min(s.find('/', start), s.size());
        const std::string_view part = s.substr(start, end - start);
        if (part.empty() || part == "..") return false;
        start = end + 1;
    }
    return s.find('\0') == std::string_view::npos;
}

bool has_control(std::string_view s) {
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f) return true;
    }
    return false;
}

class reader {
public:
    std::vector<std::string> problems;

    void problem(const std::string& at, std::string_view what) { problems.push_back(at + ": " + std::string(what)); }

    // A map whose keys must all be in `allowed`; null when `n` is not a map.
    bool map(const YAML::Node& n, const std::string& at, std::initializer_list<std::string_view> allowed) {
        if (!n.IsMap()) {
            problem(at.empty() ? "manifest" : at, "must be a mapping");
            return false;
        }
        for (const auto& kv : n) {
            const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
            if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) problem(join(at, key), "unknown field");
        }
        return true;
    }

    std::optional<std::string> scalar(const YAML::Node& n, const std::string& at) {
        if (!n.IsScalar()) {
            problem(at, "must be a string");
            return std::nullopt;
        }
        return n.Scalar();
    }

    std::vector<std::string> strings(const YAML::Node& n, const std::string& at) {
        std::vector<std::string> out;
        if (!n.IsSequence()) {
            problem(at, "must be a list");
            return out;
        }
        if (n.size() > max_list) problem(at, "must have at most 64 items");
        for (std::size_t i = 0; i < n.size(); ++i) {
            const std::string item_at = at + "[" + std::to_string(i) + "]";
            auto s = scalar(n[i], item_at);
            if (!s) continue;
            if (s->empty() || s->size() > max_text || has_control(*s)) {
                problem(item_at, "must be a non-empty string without control characters");
                continue;
            }
            out.push_back(std::move(*s));
        }
        return out;
    }

    // 1-100, as for a registration's checks.
    void threshold(const YAML::Node& n, const std::string& at, std::uint32_t& out) {
        auto s = scalar(n, at);
        if (!s) return;
        std::uint32_t v = 0;
        for (char c : *s) {
            if (c < '0' || c > '9' || v > 100) {
                v = 0;
                break;
            }
            v = v * 10 + static_cast<std::uint32_t>(c - '0');
        }
        if (v < 1 || v > 100) {
            problem(at, "must be an integer 1-100");
            return;
        }
        out = v;
    }

    std::optional<milliseconds> duration(const YAML::Node& n, const std::string& at) {
        auto s = scalar(n, at);
        if (!s) return std::nullopt;
        auto d = parse_duration(*s);
        if (!d || d->count() <= 0 || *d > milliseconds(24 * 3600 * 1000)) {
            problem(at, "must be a duration between 1ms and 24h, like 30s, 500ms or 2m");
            return std::nullopt;
        }
        return d;
    }

    static std::string join(const std::string& at, std::string_view key) {
        return at.empty() ? std::string(key) : at + "." + std::string(key);
    }

    void document(const YAML::Node& root, package_manifest& m) {
        if (!map(root, "", {"name", "version", "description", "service", "container", "depends_on", "requires", "health"})) {
            return;
        }
        if (auto n = root["name"]; !n) {
            problem("name", "is required");
        } else if (auto s = scalar(n, "name")) {
            if (valid_name(*s)) m.name = *s; else problem("name", "must be 1-128 characters of [A-Za-z0-9._-]");
        }
        if (auto n = root["version"]; !n) {
            problem("version", "is required");
        } else if (auto s = scalar(n, "version")) {
            if (valid_version(*s)) {
                m.version = *s;
            } else {
                problem("version", "must be 1-64 characters of [A-Za-z0-9._+-] starting with a letter or digit");
            }
        }
        if (auto n = root["description"]) {
            if (auto s = scalar(n, "description")) {
                if (s->size() > max_text) problem("description", "must be at most 4096 characters");
                m.description = *s;
            }
        }
        if (auto n = root["service"]; !n) {
            problem("service", "is required");
        } else {
            service(n, m);
        }
        if (auto n = root["depends_on"]) {
            m.depends_on = strings(n, "depends_on");
            for (std::size_t i = 0; i < m.depends_on.size(); ++i) {
                if (!valid_name(m.depends_on[i])) {
                    problem("depends_on[" + std::to_string(i) + "]", "must be 1-128 characters of [A-Za-z0-9._-]");
                }
            }
        }
        if (auto n = root["requires"]; n && map(n, "requires", {"commands", "libraries"})) {
            if (auto c = n["commands"]) m.required_commands = strings(c, "requires.commands");
            if (auto l = n["libraries"]) m.required_libraries = strings(l, "requires.libraries");
            for (std::size_t i = 0; i < m.required_libraries.size(); ++i) {
                if (m.required_libraries[i].find('/') != std::string::npos) {
                    problem("requires.libraries[" + std::to_string(i) + "]", "must be a library file name, like libpq.so.5");
                }
            }
        }
        if (m.is_container() && root["requires"]) {
            problem("requires", "a container package needs nothing on a host: what it needs is in its image");
        }
        if (auto n = root["container"]) {
            if (m.is_container()) {
                container(n, m.container.emplace());
            } else {
                problem("container", "only a package of service.type container has one");
            }
        } else if (m.is_container()) {
            problem("container", "is required for service.type container");
        }
        if (auto n = root["health"]) health(n, m);
    }

    // health: a process package's health script, a check of kind script with
    // the thresholds and timing of a registration's checks (docs/protocol.md,
    // "Health checks"); a container package's probe of a port, or that it runs.
    void health(const YAML::Node& n, package_manifest& m) {
        if (!map(n, "health", {"script", "check", "port", "path", "interval", "timeout", "deadline", "initial_delay",
                               "failures_before_critical", "successes_before_passing"}))
            return;
        auto& h = m.health.emplace();
        if (!m.is_container()) {
            for (const char* field : {"check", "port", "path"}) {
                if (n[field]) problem(join("health", field), "only a container package has one (its health is the script's)");
            }
        }
        if (m.is_container()) {
            package_container unused;
            container_health(n, m, m.container ? *m.container : unused);
        } else if (auto s = n["script"]; !s) {
            problem("health.script", "is required");
        } else if (auto text = scalar(s, "health.script")) {
            if (valid_relative_path(*text)) {
                h.script = *text;
            } else {
                problem("health.script", "must be a relative path inside the package");
            }
        }
        if (auto d = n["interval"]) {
            h.interval = duration(d, "health.interval").value_or(h.interval);
            if (h.interval < milliseconds(100)) problem("health.interval", "must be at least 100ms");
        }
        if (auto d = n["timeout"]) h.timeout = duration(d, "health.timeout").value_or(h.timeout);
        if (auto d = n["deadline"]) h.deadline = duration(d, "health.deadline").value_or(h.deadline);
        if (auto d = n["initial_delay"]) h.initial_delay = duration(d, "health.initial_delay").value_or(h.initial_delay);
        if (auto t = n["failures_before_critical"]) threshold(t, "health.failures_before_critical", h.failures_before_critical);
        if (auto t = n["successes_before_passing"]) threshold(t, "health.successes_before_passing", h.successes_before_passing);
    }

    // A container package's health: a probe of one of its ports, or that
    // the container runs; never a script (it would run on the host, not in
    // the container).
    void container_health(const YAML::Node& n, const package_manifest& m, package_container& h) {
        if (n["script"]) {
            problem("health.script", "a container package has no health script (it would run on the host, not in the "
                                     "container): use health.check http or tcp");
        }
        if (auto c = n["check"]) {
            if (auto s = scalar(c, "health.check")) {
                if (*s == "http") h.check = container_check::http;
                else if (*s == "tcp") h.check = container_check::tcp;
                else if (*s == "running") h.check = container_check::running;
                else problem("health.check", "must be one of http, tcp, running");
            }
        }
        if (auto p = n["port"]) {
            if (auto s = scalar(p, "health.port")) h.check_port = *s;
        }
        if (auto p = n["path"]) {
            if (auto s = scalar(p, "health.path")) {
                if (s->empty() || s->front() != '/' || s->size() > max_text || has_control(*s) ||
                    s->find(' ') != std::string::npos) {
                    problem("health.path", "must be a path starting with '/', without spaces or control characters");
                } else {
                    h.check_path = *s;
                }
            }
            if (h.check != container_check::http) problem("health.path", "only an http check has one");
        }
        if (h.check == container_check::running) {
            if (n["port"]) problem("health.port", "only an http or tcp check has one");
            return;
        }
        if (m.ports.empty()) {
            problem("health.check", "an http or tcp check needs a port: service.ports is empty");
        } else if (h.check_port.empty()) {
            h.check_port = m.ports.front().name;
        } else if (std::none_of(m.ports.begin(), m.ports.end(), [&](const package_port& p) { return p.name == h.check_port; })) {
            problem("health.port", "no port named '" + h.check_port + "' in service.ports");
        }
    }

    void container(const YAML::Node& n, package_container& c) {
        if (!map(n, "container", {"image", "preset", "command", "env", "labels", "limits"})) return;
        if (auto v = n["image"]) {
            if (auto s = scalar(v, "container.image")) {
                if (s->empty() || s->size() > 512 || has_control(*s) || s->find(' ') != std::string::npos) {
                    problem("container.image", "must be an image reference (1-512 characters, no spaces)");
                } else {
                    c.image = *s;
                }
            }
        }
        if (auto v = n["preset"]) {
            if (auto s = scalar(v, "container.preset")) {
                if (valid_name(*s)) c.preset = *s; else problem("container.preset", "must be 1-128 characters of [A-Za-z0-9._-]");
            }
        }
        if (!n["image"] && !n["preset"]) problem("container.image", "is required (or container.preset)");
        if (auto v = n["command"]) c.command = strings(v, "container.command");
        if (auto v = n["env"]) text_map(v, "container.env", c.env, true);
        if (auto v = n["labels"]) {
            text_map(v, "container.labels", c.labels, false);
            for (const auto& [k, _] : c.labels) {
                if (k.rfind("io.registry.", 0) == 0) problem("container.labels." + k, "io.registry.* labels are the registry's");
            }
        }
        if (auto v = n["limits"]; v && map(v, "container.limits", {"memory_bytes", "cpus", "pids"})) {
            if (auto x = v["memory_bytes"]) {
                if (auto s = scalar(x, "container.limits.memory_bytes")) {
                    std::uint64_t value = 0;
                    auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), value);
                    if (ec != std::errc{} || end != s->data() + s->size() || value < 4 * 1024 * 1024) {
                        problem("container.limits.memory_bytes", "must be an integer of at least 4194304 (4 MiB)");
                    } else {
                        c.memory_bytes = value;
                    }
                }
            }
            if (auto x = v["cpus"]) {
                if (auto s = scalar(x, "container.limits.cpus")) {
                    double value = 0;
                    auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), value);
                    if (ec != std::errc{} || end != s->data() + s->size() || !(value >= 0.01 && value <= 1024)) {
                        problem("container.limits.cpus", "must be a number 0.01-1024");
                    } else {
                        c.cpus = value;
                    }
                }
            }
            if (auto x = v["pids"]) {
                if (auto s = scalar(x, "container.limits.pids")) {
                    std::int64_t value = 0;
                    auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), value);
                    if (ec != std::errc{} || end != s->data() + s->size() || value < 1) {
                        problem("container.limits.pids", "must be a positive integer");
                    } else {
                        c.pids = value;
                    }
                }
            }
        }
    }

    // A mapping of strings to strings (env: names of [A-Za-z_][A-Za-z0-9_]*).
    void text_map(const YAML::Node& n, const std::string& at, std::map<std::string, std::string>& out, bool env_names) {
        if (!n.IsMap()) {
            problem(at, "must be a mapping");
            return;
        }
        if (n.size() > max_list) problem(at, "must have at most 64 items");
        for (const auto& kv : n) {
            const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
            const std::string item_at = at + "." + key;
            bool ok = !key.empty() && key.size() <= 256 && !has_control(key);
            if (ok && env_names) {
                ok = !(key.front() >= '0' && key.front() <= '9');
                for (char ch : key) ok = ok && (is_alnum(ch) || ch == '_');
            }
            if (!ok) {
                problem(item_at, env_names ? "must be a variable name of [A-Za-z0-9_], not starting with a digit"
                                           : "must be a name of 1-256 characters without control characters");
                continue;
            }
            auto value = scalar(kv.second, item_at);
            if (!value) continue;
            if (value->size() > max_text || value->find('\0') != std::string::npos) {
                problem(item_at, "must be at most 4096 characters, without NUL");
                continue;
            }
            out[key] = *value;
        }
    }

    void service(const YAML::Node& n, package_manifest& m) {
        if (!map(n, "service", {"type", "ports"})) return;
        if (auto t = n["type"]) {
            if (auto s = scalar(t, "service.type")) {
                if (*s == "managed_process" || *s == "container") {
                    m.service_type = *s;
                } else if (*s == "docker") {
                    problem("service.type", "a package that runs an image is of type container (with a container: "
                                            "section naming the image)");
                } else if (*s == "systemd") {
                    problem("service.type", "systemd packages cannot be deployed: installing a unit needs root on the "
                                            "target and the package format has no unit to install; use "
                                            "managed_process (start.sh, stop.sh) or container");
                } else {
                    problem("service.type", "must be one of managed_process, container");
                }
            }
        }
        auto ports = n["ports"];
        if (!ports) return;
        if (!ports.IsSequence()) {
            problem("service.ports", "must be a list");
            return;
        }
        if (ports.size() > max_list) problem("service.ports", "must have at most 64 items");
        std::set<std::string> names;
        for (std::size_t i = 0; i < ports.size(); ++i) {
            const std::string at = "service.ports[" + std::to_string(i) + "]";
            const YAML::Node p = ports[i];
            if (!map(p, at, {"name", "port", "protocol"})) continue;
            package_port out;
            if (auto v = p["name"]; !v) {
                problem(at + ".name", "is required");
            } else if (auto s = scalar(v, at + ".name")) {
                if (!valid_name(*s)) {
                    problem(at + ".name", "must be 1-128 characters of [A-Za-z0-9._-]");
                } else if (!names.insert(*s).second) {
                    problem(at + ".name", "duplicate port name '" + *s + "'");
                }
                out.name = *s;
            }
            if (auto v = p["port"]; !v) {
                problem(at + ".port", "is required");
            } else if (auto s = scalar(v, at + ".port")) {
                unsigned value = 0;
                auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), value);
                if (ec != std::errc{} || end != s->data() + s->size() || value == 0 || value > 65535) {
                    problem(at + ".port", "must be 1-65535");
                }
                out.port = static_cast<std::uint16_t>(value);
            }
            if (auto v = p["protocol"]) {
                if (auto s = scalar(v, at + ".protocol")) {
                    if (*s != "tcp" && *s != "udp" && *s != "http" && *s != "https" && *s != "grpc") {
                        problem(at + ".protocol", "must be one of tcp, udp, http, https, grpc");
                    }
                    out.protocol = *s;
                }
            }
            m.ports.push_back(std::move(out));
        }
    }
};

}  // namespace

std::string_view to_string(container_check c) noexcept {
    switch (c) {
        case container_check::http: return "http";
        case container_check::tcp: return "tcp";
        case container_check::running: return "running";
    }
    return "running";
}

std::optional<milliseconds> parse_duration(std::string_view text) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end == text.data() || value > 1'000'000'000) return std::nullopt;
    const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
    std::uint64_t scale = 0;
    if (unit.empty() || unit == "s") scale = 1000;
    else if (unit == "ms") scale = 1;
    else if (unit == "m") scale = 60'000;
    else if (unit == "h") scale = 3'600'000;
    else return std::nullopt;
    return milliseconds(static_cast<milliseconds::rep>(value * scale));
}

std::vector<std::string> check_package_manifest(std::string_view yaml, package_manifest* out) {
    reader r;
    package_manifest m;
    try {
        const YAML::Node root = YAML::Load(std::string(yaml));
        if (!root || root.IsNull()) {
            r.problem("manifest", "is empty");
        } else {
            r.document(root, m);
        }
    } catch (const YAML::Exception& e) {
        r.problem("manifest", "is not valid YAML (line " + std::to_string(e.mark.line + 1) + "): " + e.msg);
    }
    if (r.problems.empty() && out) {
        m.source = std::string(yaml);
        *out = std::move(m);
    }
    return std::move(r.problems);
}

result<package_manifest> parse_package_manifest(std::string_view yaml) {
    package_manifest m;
    auto problems = check_package_manifest(yaml, &m);
    if (problems.empty()) return m;
    std::string message;
    for (const auto& p : problems) {
        if (!message.empty()) message += "; ";
        message += p;
    }
    return fail(errc::invalid_package, "manifest.yaml: " + message);
}

std::string sanitize_package_name(std::string_view name) {
    std::string out(name);
    for (char& c : out) {
        if (!is_alnum(c) && c != '_' && c != '-') c = '_';
    }
    return out;
}

std::string install_dir_name(const package_manifest& m) { return sanitize_package_name(m.name) + "-" + m.version; }

}  // namespace registry::deploy
