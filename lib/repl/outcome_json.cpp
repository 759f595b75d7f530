#include "outcome_json.hpp"

#include "codec/json_reader.hpp"
#include "codec/time.hpp"

namespace registry::repl::detail {

namespace {

using ::registry::detail::json_writer;

// The protocol writes null for an absent exit code or signal; the record leaves them out.
void optional_number(json_writer& w, std::string_view key, const std::optional<int>& v, bool nulls) {
    if (v) {
        w.key(key).number(*v);
    } else if (nulls) {
        w.key(key).null();
    }
}

void write_members(json_writer& w, const outcome& o, outcome_view view, bool nulls) {
    const bool who = view != outcome_view::finished;
    const bool output = view != outcome_view::summary;
    w.key("execution_id").string(o.execution_id).key("language").string(o.language).key("version").string(o.version)
        .key("engine").string(o.engine);
    if (who) w.key("state").string("finished").key("owner").string(o.owner);
    optional_number(w, "exit_code", o.exit_code, nulls);
    optional_number(w, "signal", o.signal, nulls);
    if (output) w.key("stdout").string(o.stdout_data).key("stderr").string(o.stderr_data);
    w.key("truncated").boolean(o.truncated).key("timed_out").boolean(o.timed_out).key("cancelled").boolean(o.cancelled);
    w.key("duration_ms").number(o.duration.count());
    if (o.compile) {
        w.key("compile").begin_object().key("exit_code").number(o.compile->exit_code);
        if (output) w.key("stdout").string(o.compile->stdout_data).key("stderr").string(o.compile->stderr_data);
        w.end_object();
    }
    if (o.failure) {
        w.key("error").begin_object()
            .key("code").string(to_string(o.failure->code))
            .key("message").string(o.failure->message)
            .end_object();
    }
    if (!o.usage.empty()) {
        w.key("usage").begin_object();
        if (o.usage.cpu_ms) w.key("cpu_ms").number(*o.usage.cpu_ms);
        if (o.usage.memory_peak_bytes) w.key("memory_peak_bytes").number(*o.usage.memory_peak_bytes);
        w.end_object();
    }
    if (who) {
        w.key("submitted_at_ms").number(::registry::detail::ms(o.submitted_at));
        if (o.started_at) w.key("started_at_ms").number(::registry::detail::ms(*o.started_at));
        w.key("finished_at_ms").number(::registry::detail::ms(o.finished_at));
    }
}

using ::registry::detail::decoder;
using ::registry::detail::members;
using ::registry::detail::path;
namespace dom = ::registry::detail::dom;

bool read_compile(decoder& d, dom::element e, const path& at, compile_outcome& out) {
    static constexpr std::string_view names[] = {"exit_code", "stdout", "stderr"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "exit_code", out.exit_code) && optional(d, m, "stdout", out.stdout_data) &&
           optional(d, m, "stderr", out.stderr_data);
}

bool read_failure(decoder& d, dom::element e, const path& at, error& out) {
    static constexpr std::string_view names[] = {"code", "message"};
    members m{at, names};
    std::string code;
    if (!open(d, e, m) || !required(d, m, "code", code) || !required(d, m, "message", out.message)) return false;
    out.code = parse_errc(code).value_or(errc::internal);  // internal: a code this build does not know
    return true;
}

bool read_usage(decoder& d, dom::element e, const path& at, resource_usage& out) {
    static constexpr std::string_view names[] = {"cpu_ms", "memory_peak_bytes"};
    members m{at, names};
    return open(d, e, m) && optional(d, m, "cpu_ms", out.cpu_ms) &&
           optional(d, m, "memory_peak_bytes", out.memory_peak_bytes);
}

bool read_record(decoder& d, dom::element e, outcome& out) {
    static constexpr std::string_view names[] = {
        "execution_id", "language", "version",  "engine",       "state",           "owner",         "exit_code",     "signal",
        "stdout",       "stderr",   "truncated", "timed_out",   "cancelled",       "duration_ms",   "compile",
        "error",        "usage",    "submitted_at_ms",           "started_at_ms",   "finished_at_ms"};
    const path at{};
    members m{at, names};
    std::uint64_t duration = 0;
    if (!open(d, e, m) || !required(d, m, "execution_id", out.execution_id) ||
        !required(d, m, "language", out.language) || !optional(d, m, "version", out.version) ||
        !required(d, m, "engine", out.engine) ||
        !required(d, m, "owner", out.owner) || !optional(d, m, "exit_code", out.exit_code) ||
        !optional(d, m, "signal", out.signal) || !optional(d, m, "stdout", out.stdout_data) ||
        !optional(d, m, "stderr", out.stderr_data) || !required(d, m, "truncated", out.truncated) ||
        !required(d, m, "timed_out", out.timed_out) || !required(d, m, "cancelled", out.cancelled) ||
        !required(d, m, "duration_ms", duration) || !required(d, m, "submitted_at_ms", out.submitted_at) ||
        !optional(d, m, "started_at_ms", out.started_at) || !required(d, m, "finished_at_ms", out.finished_at)) {
        return false;
    }
    out.duration = milliseconds{static_cast<std::int64_t>(duration)};
    if (auto c = m.get("compile"); c && !read_compile(d, *c, at.member("compile"), out.compile.emplace())) return false;
    if (auto f = m.get("error"); f && !read_failure(d, *f, at.member("error"), out.failure.emplace())) return false;
    if (auto u = m.get("usage"); u && !read_usage(d, *u, at.member("usage"), out.usage)) return false;
    return true;
}

}  // namespace

void write_outcome(json_writer& w, const outcome& o, outcome_view view) { write_members(w, o, view, true); }

std::string encode_outcome_record(const outcome& o) {
    std::string out;
    out.reserve(256 + o.stdout_data.size() + o.stderr_data.size());
    json_writer w(out);
    w.begin_object();
    write_members(w, o, outcome_view::result, false);
    w.end_object();
    return out;
}

result<outcome> decode_outcome_record(std::string_view json) {
    return ::registry::detail::decode_record<outcome>(
        json, [](decoder& d, dom::element root, outcome& o) { return read_record(d, root, o); });
}

}  // namespace registry::repl::detail
