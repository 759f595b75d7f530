// Request frames: the envelope and every action's params, read with the
// codec's JSON reader (codec/json_reader.hpp); params.service is the service
// record's reader in its registration form.
#include "request_parser.hpp"

#include "codec/json_reader.hpp"
#include "codec/service_record.hpp"

#include <algorithm>
#include <array>
#include <bitset>
#include <cassert>
#include <cctype>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <span>
#include <utility>

namespace registry::detail {

// ---- request params -------------------------------------------------------------

using params_element = std::optional<dom::element>;

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::register_params& p) {
    static constexpr std::string_view names[] = {"service", "ttl_seconds", "session_bound", "lease_id"};
    members m{at, names};
    if (!open(d, e, m)) return false;
    auto service = m.get("service");
    if (!service) return d.fail(at.member("service"), "is required");
    return read_service(d, *service, at.member("service"), service_form::registration, p.reg.service) &&
           optional(d, m, "ttl_seconds", p.reg.ttl) && optional(d, m, "session_bound", p.reg.session_bound) &&
           optional(d, m, "lease_id", p.reg.lease_id);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::keepalive_params& p) {
    static constexpr std::string_view names[] = {"lease_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "lease_id", p.lease_id);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::deregister_params& p) {
    static constexpr std::string_view names[] = {"instance_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "instance_id", p.instance_id);
}

// limit and continue; with continue, the filters are the first page's and
// may not be given again.
static bool read_page(decoder& d, const members& m, protocol::page_params& page) {
    if (!optional(d, m, "limit", page.limit) || !optional(d, m, "continue", page.continue_token)) return false;
    if (page.limit && *page.limit == 0) return d.fail(m.at.member("limit"), "must be at least 1");
    if (!page.continue_token) return true;
    for (std::size_t i = 0; i < m.names.size(); ++i) {
        if (m.present[i] && m.names[i] != "limit" && m.names[i] != "continue") {
            return d.fail(m.at.member(m.names[i]), "not allowed with continue (the first page's filters apply)");
        }
    }
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::get_service_params& p) {
    static constexpr std::string_view names[] = {"instance_id", "name", "limit", "continue"};
    members m{at, names};
    if (!open(d, e, m)) return false;
    if (m.get("continue")) {  // the next page of a by-name answer
        p.by_name = true;
        return read_page(d, m, p.page);
    }
    p.by_name = m.get("name").has_value();
    if (p.by_name == m.get("instance_id").has_value()) {
        return d.fail(at, "exactly one of instance_id and name is required");
    }
    if (!p.by_name) {  // one instance: no page to read
        if (m.get("limit")) return d.fail(at.member("limit"), "only with name");
        return required(d, m, "instance_id", p.key);
    }
    return required(d, m, "name", p.key) && read_page(d, m, p.page);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::list_services_params& p) {
    static constexpr std::string_view names[] = {"name", "version", "state", "host", "metadata", "limit", "continue"};
    members m{at, names};
    auto& f = p.filter;
    return open(d, e, m) && optional(d, m, "name", f.name) && optional(d, m, "version", f.version) &&
           optional(d, m, "state", f.state) && optional(d, m, "host", f.host) &&
           optional(d, m, "metadata", f.metadata) && read_page(d, m, p.page);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::list_endpoints_params& p) {
    static constexpr std::string_view names[] = {"service", "endpoint", "protocol", "limit", "continue"};
    members m{at, names};
    auto& f = p.filter;
    return open(d, e, m) && optional(d, m, "service", f.service) && optional(d, m, "endpoint", f.endpoint) &&
           optional(d, m, "protocol", f.protocol) && read_page(d, m, p.page);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::set_state_params& p) {
    static constexpr std::string_view names[] = {"instance_id", "state", "reason"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "instance_id", p.instance_id) && required(d, m, "state", p.state) &&
           optional(d, m, "reason", p.reason);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::subscribe_params& p) {
    static constexpr std::string_view names[] = {"events", "services", "from_revision", "snapshot"};
    members m{at, names};
    auto& w = p.watch;
    return open(d, e, m) && optional(d, m, "events", w.types) && optional(d, m, "services", w.services) &&
           optional(d, m, "from_revision", w.from_revision) && optional(d, m, "snapshot", w.snapshot);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::unsubscribe_params& p) {
    static constexpr std::string_view names[] = {"subscription"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "subscription", p.subscription);
}

// ---- container actions --------------------------------------------------------------

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

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::container_create_params& p) {
    static constexpr std::string_view names[] = {"image",   "name",             "command",     "env",
                                                 "labels",  "limits",           "network",     "read_only_rootfs",
                                                 "ttl_seconds", "engine",       "preset"};
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
                    optional(d, m, "engine", r.engine);
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
        if (key.starts_with(container_labels::reserved_prefix)) {
            return d.fail(at.member("labels").member(key), "the prefix 'io.registry.' is reserved for the registry");
        }
    }
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::container_list_params& p) {
    static constexpr std::string_view names[] = {"engine", "state"};
    members m{at, names};
    return open(d, e, m) && optional(d, m, "engine", p.engine) && optional(d, m, "state", p.state);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::container_get_params& p) {
    static constexpr std::string_view names[] = {"container_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "container_id", p.container_id);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::container_logs_params& p) {
    static constexpr std::string_view names[] = {"container_id", "tail", "follow"};
    members m{at, names};
    if (!open(d, e, m) || !required(d, m, "container_id", p.container_id) || !optional(d, m, "tail", p.tail) ||
        !optional(d, m, "follow", p.follow)) {
        return false;
    }
    if (p.tail && *p.tail > 100000) return d.fail(at.member("tail"), "must be 0-100000");
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::container_stop_params& p) {
    static constexpr std::string_view names[] = {"container_id", "grace_seconds"};
    members m{at, names};
    if (!open(d, e, m) || !required(d, m, "container_id", p.container_id) ||
        !optional(d, m, "grace_seconds", p.grace_seconds)) {
        return false;
    }
    if (p.grace_seconds && *p.grace_seconds > 300) return d.fail(at.member("grace_seconds"), "must be 0-300");
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::container_remove_params& p) {
    static constexpr std::string_view names[] = {"container_id", "force"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "container_id", p.container_id) && optional(d, m, "force", p.force);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::container_extend_params& p) {
    static constexpr std::string_view names[] = {"container_id", "ttl_seconds"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "container_id", p.container_id) && optional(d, m, "ttl_seconds", p.ttl);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::image_pull_params& p) {
    static constexpr std::string_view names[] = {"reference", "engine"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "reference", p.reference) && optional(d, m, "engine", p.engine) &&
           check_image(d, at.member("reference"), p.reference);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::list_nodes_params&) {
    members m{at, {}};
    return open(d, e, m);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::deploy_package_params& p) {
    static constexpr std::string_view names[] = {"upload_id", "path", "target", "name", "version"};
    members m{at, names};
    if (!open(d, e, m) || !optional(d, m, "upload_id", p.upload_id) || !optional(d, m, "path", p.path) ||
        !optional(d, m, "target", p.target) || !optional(d, m, "name", p.name) ||
        !optional(d, m, "version", p.version)) {
        return false;
    }
    if (p.upload_id.has_value() == p.path.has_value()) return d.fail(at, "exactly one of upload_id and path is required");
    if (p.path && (p.path->empty() || p.path->front() != '/')) return d.fail(at.member("path"), "must be an absolute path");
    return true;
}

// 64 hex digits, lowercased in place.
static bool check_sha256(decoder& d, const path& at, std::string& hex) {
    const bool ok = hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) != 0;
    });
    if (!ok) return d.fail(at, "must be 64 hexadecimal digits");
    for (char& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return true;
}

// Standard base64 (RFC 4648 section 4) with padding; nothing else allowed.
static bool decode_base64(std::string_view in, std::string& out) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    if (in.size() % 4 != 0) return false;
    out.clear();
    out.reserve(in.size() / 4 * 3);
    for (std::size_t i = 0; i < in.size(); i += 4) {
        const bool last = i + 4 == in.size();
        const std::size_t pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=' && in[i + 3] == '=') : 0;
        int v[4] = {0, 0, 0, 0};
        for (std::size_t k = 0; k < 4 - pad; ++k) {
            v[k] = value(in[i + k]);
            if (v[k] < 0) return false;
        }
        const std::uint32_t n = (static_cast<std::uint32_t>(v[0]) << 18) | (static_cast<std::uint32_t>(v[1]) << 12) |
                                (static_cast<std::uint32_t>(v[2]) << 6) | static_cast<std::uint32_t>(v[3]);
        out += static_cast<char>((n >> 16) & 0xff);
        if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
        if (pad < 1) out += static_cast<char>(n & 0xff);
    }
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::package_upload_begin_params& p) {
    static constexpr std::string_view names[] = {"size", "sha256"};
    members m{at, names};
    if (!open(d, e, m) || !required(d, m, "size", p.size) || !required(d, m, "sha256", p.sha256)) return false;
    if (p.size == 0) return d.fail(at.member("size"), "must be at least 1");
    return check_sha256(d, at.member("sha256"), p.sha256);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::package_upload_chunk_params& p) {
    static constexpr std::string_view names[] = {"upload_id", "offset", "data"};
    members m{at, names};
    std::string_view encoded;
    if (!open(d, e, m) || !required(d, m, "upload_id", p.upload_id) || !required(d, m, "offset", p.offset)) return false;
    auto data = m.get("data");
    if (!data) return d.fail(at.member("data"), "is required");
    if (data->get_string().get(encoded)) return d.fail(at.member("data"), "must be a string");
    if (encoded.empty()) return d.fail(at.member("data"), "must not be empty");
    if (!decode_base64(encoded, p.data)) return d.fail(at.member("data"), "must be base64 (RFC 4648, with padding)");
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::package_upload_status_params& p) {
    static constexpr std::string_view names[] = {"upload_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "upload_id", p.upload_id);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::service_action_params& p) {
    static constexpr std::string_view names[] = {"instance_id", "action"};
    members m{at, names};
    if (!open(d, e, m) || !required(d, m, "instance_id", p.instance_id) || !required(d, m, "action", p.command)) {
        return false;
    }
    if (p.command != "start" && p.command != "stop" && p.command != "restart") {
        return d.fail(at.member("action"), "must be one of start, stop, restart");
    }
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::undeploy_params& p) {
    static constexpr std::string_view names[] = {"instance_id", "force"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "instance_id", p.instance_id) && optional(d, m, "force", p.force);
}

// ---- REPL execution

static bool read(decoder& d, dom::element e, const path& at, repl::source_file& out) {
    static constexpr std::string_view names[] = {"name", "content"};
    members m{at, names};
    if (!open(d, e, m) || !required(d, m, "name", out.name)) return false;
    auto content = m.get("content");
    if (!content) return d.fail(at.member("content"), "is required");
    if (!read_long_text(d, *content, at.member("content"), out.content)) return false;
    return !out.name.empty() || d.fail(at.member("name"), "must not be empty");
}

static bool read(decoder& d, dom::element e, const path& at, milliseconds& out) {
    std::uint64_t v = 0;
    if (!read(d, e, at, v)) return false;
    if (v > 86'400'000) return d.fail(at, "must be at most 86400000");
    out = milliseconds{static_cast<std::int64_t>(v)};
    return true;
}

static bool read(decoder& d, dom::element e, const path& at, repl::limit_overrides& out) {
    static constexpr std::string_view names[] = {"timeout_ms", "output_bytes", "memory_bytes",
                                                 "pids",       "cpu_millicores", "network"};
    members m{at, names};
    return open(d, e, m) && optional(d, m, "timeout_ms", out.timeout) &&
           optional(d, m, "output_bytes", out.output_bytes) && optional(d, m, "memory_bytes", out.memory_bytes) &&
           optional(d, m, "pids", out.pids) && optional(d, m, "cpu_millicores", out.cpu_millicores) &&
           optional(d, m, "network", out.network);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::repl_languages_params&) {
    members m{at, {}};
    return open(d, e, m);
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::repl_execute_params& p) {
    static constexpr std::string_view names[] = {"language", "code",   "files",          "stdin",
                                                 "args",     "limits", "idempotency_key"};
    members m{at, names};
    auto& r = p.req;
    if (!open(d, e, m) || !required(d, m, "language", r.language)) return false;
    const bool code = m.get("code").has_value();
    if (code == m.get("files").has_value()) return d.fail(at, "exactly one of code and files is required");
    if (code) {
        if (!read_long_text(d, *m.get("code"), at.member("code"), r.files.emplace_back().content)) return false;
    } else if (!required(d, m, "files", r.files)) {
        return false;
    }
    if (auto in = m.get("stdin"); in && !read_long_text(d, *in, at.member("stdin"), r.stdin_data)) return false;
    if (!optional(d, m, "args", r.args) ||
        !optional(d, m, "limits", r.limits) || !optional(d, m, "idempotency_key", r.idempotency_key)) {
        return false;
    }
    if (r.idempotency_key && (r.idempotency_key->empty() || r.idempotency_key->size() > 128)) {
        return d.fail(at.member("idempotency_key"), "must be 1-128 bytes");
    }
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, protocol::repl_cancel_params& p) {
    static constexpr std::string_view names[] = {"execution_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "execution_id", p.execution_id);
}

// The empty params of the named action. Only that alternative is built: a
// default request_params would be a register_params (a whole service
// instance) made and destroyed for every request.
template <std::size_t I = 0>
static std::optional<protocol::request_params> params_of(std::string_view action) {
    if constexpr (I < std::variant_size_v<protocol::request_params>) {
        if (std::variant_alternative_t<I, protocol::request_params>::action == action) {
            return std::optional<protocol::request_params>{std::in_place, std::in_place_index<I>};
        }
        return params_of<I + 1>(action);
    }
    return std::nullopt;
}

// 1-128 characters, counted as code points (simdjson has checked the UTF-8).
static bool valid_id(std::string_view id) {
    std::size_t chars = 0;
    for (unsigned char c : id) chars += (c & 0xc0) != 0x80;
    return chars >= 1 && chars <= 128;
}

static protocol::rejection invalid(std::optional<std::string> id, std::string_view action, std::string message) {
    return {std::move(id), action, error{errc::invalid_request, std::move(message)}};
}

// simdjson refuses a whole document for one integer beyond 64 bits
// (NUMBER_ERROR; BIGINT_ERROR in later versions), which would lose the
// request's id. A frame it refuses is read again with each of those integers
// replaced by this string (U+FDD0, a noncharacter), to answer with the id and
// the path of the first one; the request is never carried out.
constexpr std::string_view big_integer_marker = "\xef\xb7\x90";

// A JSON integer literal (-?[0-9]+) outside int64 and uint64.
static bool beyond_64_bits(std::string_view number) {
    const std::string_view digits = number.substr(number.starts_with('-') ? 1 : 0);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos) return false;
    const char* end = number.data() + number.size();
    if (number.starts_with('-')) {
        std::int64_t v = 0;
        return std::from_chars(number.data(), end, v).ec == std::errc::result_out_of_range;
    }
    std::uint64_t v = 0;
    return std::from_chars(number.data(), end, v).ec == std::errc::result_out_of_range;
}

// The frame with every integer literal beyond 64 bits (outside strings)
// replaced by the marker; nullopt when there is none.
static std::optional<std::string> with_big_integers_marked(std::string_view frame) {
    std::string out;
    out.reserve(frame.size());
    bool marked = false;
    for (std::size_t i = 0; i < frame.size();) {
        const char c = frame[i];
        std::size_t j = i + 1;
        if (c == '"') {
            while (j < frame.size() && frame[j] != '"') j += frame[j] == '\\' ? 2 : 1;
            j = std::min(j + 1, frame.size());
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            while (j < frame.size() && frame[j] != '\0' && std::strchr("0123456789.eE+-", frame[j]) != nullptr) ++j;
            const std::string_view number = frame.substr(i, j - i);
            if (beyond_64_bits(number)) {
                out += "\"\\ufdd0\"";
                marked = true;
                i = j;
                continue;
            }
        }
        out.append(frame.substr(i, std::min(j, frame.size()) - i));
        i = j;
    }
    if (!marked) return std::nullopt;
    return out;
}

// The path of the first marker in `e`, rendered into `out`.
static bool find_marker(dom::element e, const path& at, std::string& out) {
    switch (e.type()) {
        case dom::element_type::STRING: {
            std::string_view s;
            if (e.get_string().get(s) || s != big_integer_marker) return false;
            at.render(out);
            return true;
        }
        case dom::element_type::ARRAY: {
            dom::array items;
            if (e.get_array().get(items)) return false;
            std::size_t i = 0;
            for (dom::element x : items) {
                if (find_marker(x, at.element(i++), out)) return true;
            }
            return false;
        }
        case dom::element_type::OBJECT: {
            dom::object fields;
            if (e.get_object().get(fields)) return false;
            for (auto [key, value] : fields) {
                if (find_marker(value, at.member(key), out)) return true;
            }
            return false;
        }
        default: return false;
    }
}

}  // namespace registry::detail

namespace registry::protocol {

using namespace detail;  // the readers

struct request_parser::impl {
    dom::parser parser;
};

request_parser::request_parser() : impl_(std::make_unique<impl>()) {}
request_parser::~request_parser() = default;

parsed_frame request_parser::parse(std::string_view frame) {
    dom::element root;
    if (impl_->parser.parse(frame.data(), frame.size()).get(root)) return parse_with_big_integer(frame);
    return read_frame(root);
}

// A frame simdjson refused: not JSON, unless that was an integer beyond 64 bits.
parsed_frame request_parser::parse_with_big_integer(std::string_view frame) {
    const auto marked = with_big_integers_marked(frame);
    dom::element root;
    if (!marked || impl_->parser.parse(marked->data(), marked->size()).get(root)) {
        return invalid(std::nullopt, {}, "frame is not valid JSON");
    }
    parsed_frame read = read_frame(root);
    if (auto* r = std::get_if<rejection>(&read); r && !r->id) return read;  // no id to answer with
    const std::string& id = std::visit([](const auto& x) -> const std::string& {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, rejection>) return *x.id; else return x.id;
    }, read);
    if (id == big_integer_marker) return invalid(std::nullopt, {}, "id: must be a string of 1-128 characters");
    std::string field;
    find_marker(root, path{}, field);
    field += ": must be an integer of at most 64 bits";
    if (auto* r = std::get_if<rejection>(&read)) return invalid(std::move(r->id), r->action, std::move(field));
    auto& req = std::get<request>(read);
    const std::string_view action = std::visit([](const auto& p) { return p.action; }, req.params);
    return invalid(std::move(req.id), action, std::move(field));
}

parsed_frame request_parser::read_frame(const simdjson::dom::element& root) {
    if (!root.is_object()) return invalid(std::nullopt, {}, "frame is not a JSON object");

    // The id first: every later rejection carries it.
    dom::element id_value;
    if (root["id"].get(id_value)) return invalid(std::nullopt, {}, "id: is required");
    std::string_view id_text;
    if (id_value.get_string().get(id_text) || !valid_id(id_text)) {
        return invalid(std::nullopt, {}, "id: must be a string of 1-128 characters");
    }
    std::string id(id_text);

    const path top;
    static constexpr std::string_view names[] = {"id", "type", "action", "params"};
    members m{top, names};
    decoder d;
    d.max_string = max_request_string;
    std::string type;
    std::string action;
    if (!open(d, root, m) || !required(d, m, "type", type)) {
        return invalid(std::move(id), {}, std::move(d.problem));
    }
    if (type != "request") return invalid(std::move(id), {}, R"(type: must be "request")");
    if (!required(d, m, "action", action)) return invalid(std::move(id), {}, std::move(d.problem));
    std::optional<request_params> params_of_action = params_of(action);
    if (!params_of_action) {
        return rejection{std::move(id), {}, error{errc::unknown_action, "unknown action '" + action + "'"}};
    }
    request req{std::move(id), std::move(*params_of_action)};
    const std::string_view name = std::visit([](const auto& p) { return p.action; }, req.params);
    const path params_at = top.member("params");
    const params_element params = m.get("params");
    if (!std::visit([&](auto& p) { return read_params(d, params, params_at, p); }, req.params)) {
        return invalid(std::move(req.id), name, std::move(d.problem));
    }
    return req;
}

}  // namespace registry::protocol
