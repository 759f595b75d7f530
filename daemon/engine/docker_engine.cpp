#include "engine/docker_engine.hpp"

#include "deploy/tar_builder.hpp"

#include <registry/cancellation.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <utility>

namespace registryd {

namespace json = boost::json;
using registry::errc;
using registry::fail;
using registry::result;
using registry::task;
using registry::unexpected;

// ------------------------------------------------------------ wire pieces

namespace docker {

namespace {

// Appends to a buffer whose first `pos` bytes are consumed. Those are dropped
// when they are all of it, or most of a large one: a long stream neither grows
// without bound nor moves its tail on every piece.
void append_unconsumed(std::string& buf, std::size_t& pos, std::string_view bytes) {
    if (pos == buf.size()) {
        buf.clear();
        pos = 0;
    } else if (pos > 64 * 1024 && pos * 2 > buf.size()) {
        buf.erase(0, pos);
        pos = 0;
    }
    buf.append(bytes);
}

}  // namespace

void frame_demuxer::feed(std::string_view bytes) { append_unconsumed(buf_, pos_, bytes); }

namespace {

// Could `h` (all or the start of 8 bytes) be a frame header?
bool plausible_header(std::string_view h) {
    if (h.empty()) return true;
    const auto kind = static_cast<unsigned char>(h[0]);
    if (kind > 2) return false;
    for (std::size_t i = 1; i < std::min<std::size_t>(4, h.size()); ++i) {
        if (h[i] != '\0') return false;
    }
    return true;
}

}  // namespace

std::optional<registry::output_chunk> frame_demuxer::next() {
    for (;;) {
        if (corrupt_) return std::nullopt;
        const std::size_t avail = buf_.size() - pos_;
        if (mode_ == mode::raw) {
            if (avail == 0) return std::nullopt;
            registry::output_chunk c{registry::output_stream::out, buf_.substr(pos_)};
            pos_ = buf_.size();
            return c;
        }
        if (remaining_ > 0) {
            if (avail == 0) return std::nullopt;
            const std::size_t n = std::min(avail, remaining_);
            registry::output_chunk c{current_, buf_.substr(pos_, n)};
            pos_ += n;
            remaining_ -= n;
            return c;
        }
        const std::string_view head = std::string_view(buf_).substr(pos_, std::min<std::size_t>(avail, 8));
        if (!plausible_header(head)) {
            if (mode_ == mode::undecided) {
                mode_ = mode::raw;
                continue;
            }
            corrupt_ = true;
            return std::nullopt;
        }
        if (head.size() < 8) return std::nullopt;
        mode_ = mode::framed;
        current_ = static_cast<unsigned char>(head[0]) == 2 ? registry::output_stream::err : registry::output_stream::out;
        remaining_ = (std::size_t{static_cast<unsigned char>(head[4])} << 24) |
                     (std::size_t{static_cast<unsigned char>(head[5])} << 16) |
                     (std::size_t{static_cast<unsigned char>(head[6])} << 8) |
                     std::size_t{static_cast<unsigned char>(head[7])};
        pos_ += 8;
    }
}

std::optional<registry::output_chunk> frame_demuxer::finish() {
    if (auto c = next()) return c;
    // A short stream that never got as far as a whole header: raw output.
    if (mode_ == mode::undecided && pos_ < buf_.size()) {
        registry::output_chunk c{registry::output_stream::out, buf_.substr(pos_)};
        pos_ = buf_.size();
        return c;
    }
    return std::nullopt;
}

void line_splitter::feed(std::string_view bytes) { append_unconsumed(buf_, pos_, bytes); }

std::optional<std::string> line_splitter::next() {
    const auto nl = buf_.find('\n', pos_);
    if (nl == std::string::npos) return std::nullopt;
    std::size_t end = nl;
    if (end > pos_ && buf_[end - 1] == '\r') --end;
    std::string line = buf_.substr(pos_, end - pos_);
    pos_ = nl + 1;
    return line;
}

std::optional<std::string> line_splitter::finish() {
    if (auto l = next()) return l;
    if (pos_ == buf_.size()) return std::nullopt;
    std::string line = buf_.substr(pos_);
    pos_ = buf_.size();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

namespace {

bool digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
    if (at + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

}  // namespace

std::optional<registry::time_point> parse_time(std::string_view s) {
    using namespace std::chrono;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
        !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, h) ||
        s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec)) {
        return std::nullopt;
    }
    if (y <= 1) return std::nullopt;  // Go's zero time: never
    const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
    std::size_t i = 19;
    int millis = 0;
    if (i < s.size() && s[i] == '.') {
        ++i;
        int scale = 100;
        const std::size_t start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            millis += (s[i] - '0') * scale;
            scale /= 10;
            ++i;
        }
        if (i == start) return std::nullopt;
    }
    minutes offset{0};
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        int oh = 0, om = 0;
        if (!digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !digits(s, i + 4, 2, om)) {
            return std::nullopt;
        }
        offset = hours{oh} + minutes{om};
        if (s[i] == '-') offset = -offset;
        i += 6;
    } else {
        return std::nullopt;
    }
    if (i != s.size()) return std::nullopt;
    return time_point_cast<milliseconds>(sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} + milliseconds{millis} -
                                         offset);
}

std::string url_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::pair<std::string, std::string> split_reference(std::string_view reference) {
    if (reference.find('@') != std::string_view::npos) return {std::string(reference), ""};
    const auto slash = reference.rfind('/');
    const auto colon = reference.rfind(':');
    if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
        return {std::string(reference.substr(0, colon)), std::string(reference.substr(colon + 1))};
    }
    return {std::string(reference), "latest"};
}

}  // namespace docker

// ------------------------------------------------------------ JSON helpers

namespace {

const json::value* member(const json::object* o, std::string_view key) {
    return o ? o->if_contains(key) : nullptr;
}

const json::object* object_at(const json::object* o, std::string_view key) {
    const auto* v = member(o, key);
    return v ? v->if_object() : nullptr;
}

std::string string_at(const json::object* o, std::string_view key) {
    const auto* v = member(o, key);
    if (!v || !v->is_string()) return {};
    return std::string(v->get_string());
}

std::optional<std::int64_t> int_at(const json::object* o, std::string_view key) {
    const auto* v = member(o, key);
    if (!v) return std::nullopt;
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
    if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
    return std::nullopt;
}

bool bool_at(const json::object* o, std::string_view key) {
    const auto* v = member(o, key);
    return v && v->is_bool() && v->get_bool();
}

std::vector<std::string> strings_at(const json::object* o, std::string_view key) {
    std::vector<std::string> out;
    const auto* v = member(o, key);
    if (const auto* a = v ? v->if_array() : nullptr) {
        for (const auto& e : *a) {
            if (e.is_string()) out.emplace_back(e.get_string());
        }
    }
    return out;
}

std::map<std::string, std::string> labels_at(const json::object* o, std::string_view key) {
    std::map<std::string, std::string> out;
    if (const auto* l = object_at(o, key)) {
        for (const auto& [k, v] : *l) {
            if (v.is_string()) out.emplace(std::string(k), std::string(v.get_string()));
        }
    }
    return out;
}

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

std::string trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}

// The engine's explanation of a failed request: {"message": "..."} (Docker
// and Podman), else the body itself.
std::string engine_message(const http_response& r) {
    json::error_code ec;
    const json::value v = json::parse(r.body, ec);
    if (!ec) {
        const std::string m = string_at(v.if_object(), "message");
        if (!m.empty()) return m;
    }
    std::string body = trim(r.body);
    if (body.size() > 512) body = body.substr(0, 512) + "...";
    if (body.empty()) return "HTTP status " + std::to_string(r.status);
    return body;
}

// Podman answers 500 where Docker says 409; its error body names the cause.
errc podman_cause_code(const std::string& body) {
    json::error_code ec;
    const json::value v = json::parse(body, ec);
    if (ec) return errc::internal;
    const std::string cause = string_at(v.if_object(), "cause");
    if (cause == "container state improper" || cause == "that name is already in use" ||
        cause == "container already exists" || cause == "name or ID already in use") {
        return errc::conflict;
    }
    if (cause == "no such container" || cause == "image not known" || cause == "no such image") return errc::not_found;
    return errc::internal;
}

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

unexpected engine_failure(const http_response& r, std::string_view what) { return unexpected{engine_error(r, what)}; }

// A 2xx body that is not the JSON we expected.
unexpected bad_reply(std::string_view what, std::string_view why) {
    return fail(errc::internal, std::string(what) + ": unexpected reply from the container engine: " + std::string(why));
}

json::value parse_json(const std::string& body, json::error_code& ec) { return json::parse(body, ec); }

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

// Built as a named local before a co_await: GCC 12 mishandles aggregate
// temporaries (and braced lists) inside a co_await expression.
http_request make_request(std::string method, std::string target, std::string body = {},
                          std::string content_type = {}, bool upgrade = false) {
    http_request r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.body = std::move(body);
    r.content_type = std::move(content_type);
    r.upgrade = upgrade;
    return r;
}

std::string id_path(std::string_view id) { return "/containers/" + docker::url_encode(id); }

// ---- streams

using output_item = result<registry::output_chunk>;
using progress_item = result<registry::pull_progress>;

// Logs and attach: the framed stream, demultiplexed.
registry::engine_stream<registry::output_chunk> output_frames(http_stream body, std::stop_token stop) {
    docker::frame_demuxer demux;
    for (;;) {
        auto piece = co_await body.next(stop);
        if (!piece) {
            output_item e = unexpected{piece.err()};
            co_yield e;
            co_return;
        }
        if (!*piece) break;
        demux.feed(**piece);
        for (;;) {
            auto chunk = demux.next();
            if (!chunk) break;
            output_item item = std::move(*chunk);
            co_yield item;
        }
        if (demux.corrupt()) {
            output_item e = fail(errc::internal, "the container engine sent a malformed output frame");
            co_yield e;
            co_return;
        }
    }
    for (;;) {
        auto chunk = demux.finish();
        if (!chunk) break;
        output_item item = std::move(*chunk);
        co_yield item;
    }
}

// One line of POST /images/create's stream: progress, or the error that
// ends the pull.
progress_item parse_progress(const std::string& line, const std::string& reference) {
    json::error_code ec;
    const json::value v = json::parse(line, ec);
    const json::object* o = ec ? nullptr : v.if_object();
    if (!o) return fail(errc::internal, "pull " + reference + ": unparsable progress line from the container engine: " + line);
    std::string error = string_at(o, "error");
    if (error.empty()) error = string_at(object_at(o, "errorDetail"), "message");
    if (!error.empty()) return fail(pull_error_code(error), "pull " + reference + ": " + error);
    registry::pull_progress p;
    p.id = string_at(o, "id");
    p.status = string_at(o, "status");
    p.progress = string_at(o, "progress");
    const json::object* detail = object_at(o, "progressDetail");
    if (auto c = int_at(detail, "current"); c && *c >= 0) p.current = static_cast<std::uint64_t>(*c);
    if (auto t = int_at(detail, "total"); t && *t > 0) p.total = static_cast<std::uint64_t>(*t);
    return p;
}

registry::engine_stream<registry::pull_progress> progress_stream(http_stream body, std::string reference,
                                                                 std::stop_token stop) {
    docker::line_splitter lines;
    bool done = false;
    while (!done) {
        auto piece = co_await body.next(stop);
        if (!piece) {
            progress_item e = unexpected{piece.err()};
            co_yield e;
            co_return;
        }
        if (*piece) {
            lines.feed(**piece);
        } else {
            done = true;
        }
        for (;;) {
            auto line = done ? lines.finish() : lines.next();
            if (!line) break;
            if (trim(*line).empty()) continue;
            progress_item item = parse_progress(*line, reference);
            const bool failed = !item.ok();
            co_yield item;
            if (failed) co_return;
        }
    }
}

// Opens a streaming request; a status other than `expected` (or `also`)
// becomes the engine's error.
task<result<http_stream>> open_stream(engine_http_client& http, http_request req, std::string what,
                                      unsigned expected, unsigned also, bool head_may_wait, std::stop_token stop) {
    auto opened = co_await http.open(std::move(req), stop, head_may_wait);
    if (!opened) co_return unexpected{opened.err()};
    http_stream s = std::move(*opened);
    if (s.status() != expected && s.status() != also) {
        auto body = co_await s.read_all(http.options().request_timeout, stop);
        if (!body) co_return unexpected{body.err()};
        co_return engine_failure(http_response{s.status(), s.content_type(), std::move(*body)}, what);
    }
    co_return s;
}

// A follow that opens its request when first iterated: Podman sends no
// response head before the container's first output.
registry::engine_stream<registry::output_chunk> lazy_output(engine_http_client& http, http_request req,
                                                            std::string what, std::stop_token stop) {
    auto opened = co_await open_stream(http, std::move(req), std::move(what), 200, 200, true, stop);
    if (!opened) {
        output_item e = unexpected{opened.err()};
        co_yield e;
        co_return;
    }
    auto frames = output_frames(std::move(*opened), stop);
    for (auto it = co_await frames.begin(); it != frames.end(); co_await ++it) co_yield *it;
}

// An image pull, opened when first iterated: the engine may say nothing
// (not even its response head) until the registry has answered.
registry::engine_stream<registry::pull_progress> lazy_pull(engine_http_client& http, http_request req,
                                                           std::string reference, std::stop_token stop) {
    std::string what = "pull " + reference;
    auto opened = co_await open_stream(http, std::move(req), std::move(what), 200, 200, true, stop);
    if (!opened) {
        progress_item e = unexpected{opened.err()};
        co_yield e;
        co_return;
    }
    auto progress = progress_stream(std::move(*opened), reference, stop);
    for (auto it = co_await progress.begin(); it != progress.end(); co_await ++it) co_yield *it;
}

}  // namespace

// ------------------------------------------------------------ the engine

docker_engine::docker_engine(boost::asio::io_context& ioc, engine_endpoint endpoint, docker_engine_options options)
    : http_(ioc, std::move(endpoint), options.http), options_(std::move(options)) {}

task<result<void>> docker_engine::ping(std::stop_token cancel) {
    auto req = make_request("GET", path("/_ping"));
    auto r = co_await http_.request(std::move(req), cancel, options_.ping_timeout);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 200) co_return engine_failure(*r, "ping");
    co_return result<void>{};
}

task<result<registry::engine_info>> docker_engine::version(std::stop_token cancel) {
    auto req = make_request("GET", path("/version"));
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 200) co_return engine_failure(*r, "version");
    json::error_code ec;
    const json::value v = parse_json(r->body, ec);
    const json::object* o = ec ? nullptr : v.if_object();
    if (!o) co_return bad_reply("version", "not a JSON object");
    registry::engine_info info;
    info.version = string_at(o, "Version");
    info.api_version = string_at(o, "ApiVersion");
    info.os = string_at(o, "Os");
    info.arch = string_at(o, "Arch");
    if (const auto* comps = member(o, "Components"); comps && comps->is_array() && !comps->get_array().empty()) {
        info.name = string_at(comps->get_array()[0].if_object(), "Name");
    }
    if (info.name.empty() || info.name == "Engine") info.name = "Docker Engine";
    co_return info;
}

task<result<std::string>> docker_engine::create(registry::container_spec spec, std::stop_token cancel) {
    if (spec.image.empty()) co_return fail(errc::invalid_request, "create: no image");
    json::object body;
    body["Image"] = spec.image;
    if (!spec.command.empty()) {
        json::array cmd;
        for (const auto& c : spec.command) cmd.emplace_back(c);
        body["Cmd"] = std::move(cmd);
    }
    if (!spec.env.empty()) {
        json::array env;
        for (const auto& [k, v] : spec.env) env.emplace_back(k + "=" + v);
        body["Env"] = std::move(env);
    }
    json::object labels;
    for (const auto& [k, v] : spec.labels) labels[k] = v;
    body["Labels"] = std::move(labels);
    body["Tty"] = false;
    body["OpenStdin"] = false;
    body["AttachStdin"] = false;
    body["AttachStdout"] = true;
    body["AttachStderr"] = true;

    json::object host;
    if (spec.limits.memory_bytes) {
        if (*spec.limits.memory_bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            co_return fail(errc::invalid_request, "create: memory limit out of range");
        }
        host["Memory"] = static_cast<std::int64_t>(*spec.limits.memory_bytes);
    }
    if (spec.limits.cpus) {
        const double cpus = *spec.limits.cpus;
        if (!(cpus > 0) || cpus > 1e6) co_return fail(errc::invalid_request, "create: cpus must be positive");
        host["NanoCpus"] = static_cast<std::int64_t>(std::llround(cpus * 1e9));
    }
    if (spec.limits.pids) host["PidsLimit"] = *spec.limits.pids;
    // The default network is what the engine does without NetworkMode
    // (Docker: "default", i.e. bridge; Podman as root: bridge).
    if (spec.network == registry::container_network::none) host["NetworkMode"] = "none";
    host["ReadonlyRootfs"] = spec.read_only_rootfs;
    if (!spec.user.empty()) body["User"] = spec.user;
    if (!spec.tmpfs.empty()) {
        json::object tmpfs;
        for (const auto& [point, options] : spec.tmpfs) tmpfs[point] = options;
        host["Tmpfs"] = std::move(tmpfs);
    }
    if (spec.drop_all_capabilities) host["CapDrop"] = json::array{"ALL"};
    if (spec.no_new_privileges) host["SecurityOpt"] = json::array{"no-new-privileges"};
    body["HostConfig"] = std::move(host);

    std::string target = path("/containers/create");
    if (!spec.name.empty()) target += "?name=" + docker::url_encode(spec.name);
    const std::string what = "create container" + (spec.name.empty() ? std::string() : " " + spec.name);
    auto req = make_request("POST", std::move(target), json::serialize(body), "application/json");
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 201 && r->status != 200) co_return engine_failure(*r, what);
    json::error_code ec;
    const json::value v = parse_json(r->body, ec);
    std::string id = ec ? std::string() : string_at(v.if_object(), "Id");
    if (id.empty()) co_return bad_reply(what, "no Id");
    co_return id;
}

task<result<void>> docker_engine::start(std::string id, std::stop_token cancel) {
    auto req = make_request("POST", path(id_path(id) + "/start"));
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 204 && r->status != 304 && r->status != 200) co_return engine_failure(*r, "start " + id);
    co_return result<void>{};
}

task<result<void>> docker_engine::stop(std::string id, std::chrono::seconds grace, std::stop_token cancel) {
    const auto t = std::max<std::chrono::seconds::rep>(grace.count(), 0);
    // The engine answers once the container has stopped: up to `grace`, plus
    // the kill.
    const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::seconds(t)) +
                         options_.http.request_timeout;
    auto req = make_request("POST", path(id_path(id) + "/stop?t=" + std::to_string(t)));
    auto r = co_await http_.request(std::move(req), cancel, timeout);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 204 && r->status != 304 && r->status != 200) co_return engine_failure(*r, "stop " + id);
    co_return result<void>{};
}

task<result<void>> docker_engine::remove(std::string id, bool force, std::stop_token cancel) {
    const std::string target = path(id_path(id) + "?v=1&force=" + (force ? "1" : "0"));
    auto req = make_request("DELETE", target);
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 204 && r->status != 200) co_return engine_failure(*r, "remove " + id);
    co_return result<void>{};
}

task<result<registry::container_info>> docker_engine::inspect(std::string id, std::stop_token cancel) {
    auto req = make_request("GET", path(id_path(id) + "/json"));
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    const std::string what = "inspect " + id;
    if (r->status != 200) co_return engine_failure(*r, what);
    json::error_code ec;
    const json::value v = parse_json(r->body, ec);
    const json::object* o = ec ? nullptr : v.if_object();
    if (!o) co_return bad_reply(what, "not a JSON object");

    registry::container_info info;
    info.id = string_at(o, "Id");
    info.name = string_at(o, "Name");
    if (info.name.starts_with('/')) info.name.erase(0, 1);
    info.created = docker::parse_time(string_at(o, "Created"));

    const json::object* config = object_at(o, "Config");
    info.image = string_at(config, "Image");
    if (info.image.empty()) info.image = string_at(o, "Image");
    info.command = strings_at(config, "Cmd");
    info.labels = labels_at(config, "Labels");
    for (const auto& e : strings_at(config, "Env")) {
        const auto eq = e.find('=');
        if (eq == std::string::npos) {
            info.env.emplace(e, "");
        } else {
            info.env.emplace(e.substr(0, eq), e.substr(eq + 1));
        }
    }

    const json::object* state = object_at(o, "State");
    info.state.status = parse_status(string_at(state, "Status"));
    info.state.running = bool_at(state, "Running");
    info.state.exit_code = static_cast<int>(int_at(state, "ExitCode").value_or(0));
    info.state.oom_killed = bool_at(state, "OOMKilled");
    info.state.error = string_at(state, "Error");
    info.state.started_at = docker::parse_time(string_at(state, "StartedAt"));
    info.state.finished_at = docker::parse_time(string_at(state, "FinishedAt"));
    // An engine may report a start time for a created container (or keep the
    // last run's finish time while running): only what fits the state counts.
    if (info.state.status == registry::container_status::created) info.state.started_at.reset();
    if (info.state.running) info.state.finished_at.reset();

    const json::object* hostcfg = object_at(o, "HostConfig");
    if (auto m = int_at(hostcfg, "Memory"); m && *m > 0) info.limits.memory_bytes = static_cast<std::uint64_t>(*m);
    if (auto n = int_at(hostcfg, "NanoCpus"); n && *n > 0) {
        info.limits.cpus = static_cast<double>(*n) / 1e9;
    } else if (auto quota = int_at(hostcfg, "CpuQuota"); quota && *quota > 0) {
        const auto period = int_at(hostcfg, "CpuPeriod").value_or(100'000);
        if (period > 0) info.limits.cpus = static_cast<double>(*quota) / static_cast<double>(period);
    }
    if (auto p = int_at(hostcfg, "PidsLimit"); p && *p > 0) info.limits.pids = *p;
    info.network_mode = string_at(hostcfg, "NetworkMode");
    info.read_only_rootfs = bool_at(hostcfg, "ReadonlyRootfs");
    co_return info;
}

task<result<std::vector<registry::container_summary>>> docker_engine::list(registry::label_selector labels,
                                                                           std::stop_token cancel) {
    std::string target = path("/containers/json?all=1");
    if (!labels.terms.empty()) {
        json::array terms;
        for (const auto& t : labels.terms) terms.emplace_back(t.value ? t.key + "=" + *t.value : t.key);
        json::object filters;
        filters["label"] = std::move(terms);
        target += "&filters=" + docker::url_encode(json::serialize(filters));
    }
    auto req = make_request("GET", std::move(target));
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 200) co_return engine_failure(*r, "list containers");
    json::error_code ec;
    const json::value v = parse_json(r->body, ec);
    const json::array* a = ec ? nullptr : v.if_array();
    if (!a) co_return bad_reply("list containers", "not a JSON array");

    std::vector<registry::container_summary> out;
    out.reserve(a->size());
    for (const auto& e : *a) {
        const json::object* o = e.if_object();
        if (!o) continue;
        registry::container_summary s;
        s.id = string_at(o, "Id");
        const auto names = strings_at(o, "Names");
        if (!names.empty()) s.name = names.front().starts_with('/') ? names.front().substr(1) : names.front();
        s.image = string_at(o, "Image");
        s.labels = labels_at(o, "Labels");
        s.status = parse_status(string_at(o, "State"));
        s.status_text = string_at(o, "Status");
        if (auto c = int_at(o, "Created"); c && *c > 0) s.created = registry::time_point(std::chrono::seconds(*c));
        // The engine filtered already; checking again costs nothing and keeps
        // a lax engine from handing out containers that are not ours.
        const bool matches = std::all_of(labels.terms.begin(), labels.terms.end(), [&](const auto& t) {
            const auto it = s.labels.find(t.key);
            return it != s.labels.end() && (!t.value || it->second == *t.value);
        });
        if (matches) out.push_back(std::move(s));
    }
    co_return out;
}

task<result<int>> docker_engine::wait(std::string id, std::stop_token cancel) {
    const std::string what = "wait " + id;
    // Podman sends the response head only when the container stops.
    auto req = make_request("POST", path(id_path(id) + "/wait?condition=not-running"));
    auto opened = co_await http_.open(std::move(req), cancel, true);
    if (!opened) co_return unexpected{opened.err()};
    http_stream s = std::move(*opened);
    const unsigned status = s.status();
    // The answer comes when the container stops: no deadline for a 200.
    auto body = co_await s.read_all(status == 200 ? std::chrono::milliseconds::zero() : options_.http.request_timeout,
                                    cancel);
    if (!body) co_return unexpected{body.err()};
    http_response r{status, s.content_type(), std::move(*body)};
    if (status != 200) co_return engine_failure(r, what);
    json::error_code ec;
    const json::value v = parse_json(r.body, ec);
    const json::object* o = ec ? nullptr : v.if_object();
    const auto code = int_at(o, "StatusCode");
    if (!code) co_return bad_reply(what, "no StatusCode");
    const std::string error = string_at(object_at(o, "Error"), "Message");
    if (!error.empty()) co_return fail(errc::internal, what + ": " + error);
    co_return static_cast<int>(*code);
}

task<result<registry::engine_stream<registry::output_chunk>>> docker_engine::logs(std::string id,
                                                                                  registry::log_options options,
                                                                                  std::stop_token cancel) {
    std::string target = path(id_path(id) + "/logs?stdout=" + (options.want_stdout ? "1" : "0") +
                              "&stderr=" + (options.want_stderr ? "1" : "0") + "&follow=" + (options.follow ? "1" : "0"));
    target += "&tail=" + (options.tail ? std::to_string(*options.tail) : std::string("all"));
    auto req = make_request("GET", std::move(target));
    const std::string what = "logs " + id;
    if (options.follow) {
        // Podman sends no response head before the first output: open when
        // first iterated, after checking here that the container exists.
        auto check = make_request("GET", path(id_path(id) + "/json"));
        auto r = co_await http_.request(std::move(check), cancel);
        if (!r) co_return unexpected{r.err()};
        if (r->status != 200) co_return engine_failure(*r, what);
        co_return lazy_output(http_, std::move(req), what, cancel);
    }
    auto opened = co_await open_stream(http_, std::move(req), what, 200, 200, false, cancel);
    if (!opened) co_return unexpected{opened.err()};
    co_return output_frames(std::move(*opened), cancel);
}

task<result<registry::engine_stream<registry::output_chunk>>> docker_engine::attach(std::string id,
                                                                                    std::stop_token cancel) {
    // Docker answers 101 (we asked to upgrade); some versions 200 and then
    // hijack anyway. Either way the body is the raw framed stream.
    auto req = make_request("POST", path(id_path(id) + "/attach?stream=1&stdout=1&stderr=1"), {}, {}, true);
    std::string what = "attach " + id;
    auto opened = co_await open_stream(http_, std::move(req), std::move(what), 101, 200, false, cancel);
    if (!opened) co_return unexpected{opened.err()};
    co_return output_frames(std::move(*opened), cancel);
}

task<result<void>> docker_engine::put_archive(std::string id, std::string directory,
                                              std::vector<registry::archive_file> files, std::stop_token cancel) {
    std::string tar;
    try {
        tar_builder b;
        for (const auto& f : files) b.add_file(f.path, f.contents, f.mode);
        tar = b.finish();
    } catch (const std::invalid_argument& e) {
        co_return fail(errc::invalid_request, "put_archive " + id + ": " + e.what());
    } catch (const std::exception& e) {
        co_return fail(errc::internal, "put_archive " + id + ": " + e.what());
    }
    co_return co_await put_tar(std::move(id), std::move(directory), std::move(tar), cancel);
}

task<result<void>> docker_engine::put_tar(std::string id, std::string directory, std::string tar,
                                          std::stop_token cancel) {
    if (directory.empty() || directory.front() != '/') {
        co_return fail(errc::invalid_request, "put_archive " + id + ": the directory must be an absolute path");
    }
    const std::string target = path(id_path(id) + "/archive?path=" + docker::url_encode(directory));
    auto req = make_request("PUT", target, std::move(tar), "application/x-tar");
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 200 && r->status != 204) co_return engine_failure(*r, "put_archive " + id + " " + directory);
    co_return result<void>{};
}

task<result<registry::engine_stream<registry::pull_progress>>> docker_engine::pull_image(std::string reference,
                                                                                         std::stop_token cancel) {
    if (reference.empty()) co_return fail(errc::invalid_request, "pull: no image");
    auto [image, tag] = docker::split_reference(reference);
    std::string target = path("/images/create?fromImage=" + docker::url_encode(image));
    if (!tag.empty()) target += "&tag=" + docker::url_encode(tag);
    co_return lazy_pull(http_, make_request("POST", std::move(target)), std::move(reference), cancel);
}

}  // namespace registryd
