#include "health_check_record.hpp"

#include "enum_names.hpp"
#include "json_reader.hpp"
#include "time.hpp"

namespace registry::detail {

namespace {

void write_result(json_writer& w, const check_result& r) {
    w.begin_object()
        .key("status").string(to_string(r.status))
        .key("output").string(r.output)
        .key("checked_at_ms").number(ms(r.checked_at))
        .key("since_ms").number(ms(r.since))
        .end_object();
}

}  // namespace

void write_checks(json_writer& w, const std::vector<health_check>& checks) {
    w.begin_array();
    for (const auto& c : checks) {
        w.begin_object().key("name").string(c.name).key("kind").string(to_string(c.kind));
        switch (c.kind) {
            case check_kind::http:
                w.key("method").string(c.method);
                if (!c.url.empty()) {
                    w.key("url").string(c.url);
                } else {
                    w.key("endpoint").string(c.endpoint).key("path").string(c.path);
                }
                w.key("expected_status").begin_array().number(c.status_min).number(c.status_max).end_array();
                w.key("tls_verify").boolean(c.tls_verify);
                break;
            case check_kind::tcp:
                if (!c.address.empty()) {
                    w.key("address").string(c.address);
                } else {
                    w.key("endpoint").string(c.endpoint);
                }
                break;
            case check_kind::ttl:
            case check_kind::script:
                break;
        }
        w.key("interval_ms").number(static_cast<std::uint64_t>(c.interval.count()))
            .key("timeout_ms").number(static_cast<std::uint64_t>(c.timeout.count()))
            .key("initial_delay_ms").number(static_cast<std::uint64_t>(c.initial_delay.count()))
            .key("successes_before_passing").number(c.successes_before_passing)
            .key("failures_before_critical").number(c.failures_before_critical);
        if (c.deregister_critical_after) {
            w.key("deregister_critical_after_ms").number(static_cast<std::uint64_t>(c.deregister_critical_after->count()));
        }
        w.key("result");
        write_result(w, c.result);
        w.end_object();
    }
    w.end_array();
}

std::size_t checks_json_capacity(const std::vector<health_check>& checks) noexcept {
    constexpr std::size_t per_check = 512;  // keys, brackets, numbers at their widest
    std::size_t n = 16;
    for (const auto& c : checks) {
        n += per_check + c.name.size() + c.method.size() + c.url.size() + c.path.size() + c.endpoint.size() +
             c.address.size() + c.result.output.size();
    }
    return n;
}

// ---- reading ---------------------------------------------------------------------

static bool read(decoder& d, dom::element e, const path& at, milliseconds& out) {
    std::uint64_t v = 0;
    if (!read(d, e, at, v)) return false;
    if (v > 86'400'000ULL * 365) return d.fail(at, "must be at most a year");
    out = milliseconds{static_cast<std::int64_t>(v)};
    return true;
}

static bool read(decoder& d, dom::element e, const path& at, check_result& out) {
    static constexpr std::string_view names[] = {"status", "output", "checked_at_ms", "since_ms"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "status", out.status) && required(d, m, "output", out.output) &&
           required(d, m, "checked_at_ms", out.checked_at) && required(d, m, "since_ms", out.since);
}

// [min, max]
static bool read_status_range(decoder& d, dom::element e, const path& at, health_check& out) {
    std::vector<std::uint16_t> range;
    if (!read(d, e, at, range)) return false;
    if (range.size() != 2) return d.fail(at, "must be [min, max]");
    out.status_min = range[0];
    out.status_max = range[1];
    return true;
}

static bool read_check(decoder& d, dom::element e, const path& at, bool with_results, health_check& out) {
    static constexpr std::string_view names[] = {
        "name",        "kind",       "method",      "url",
        "path",        "expected_status", "tls_verify", "endpoint",
        "address",     "interval_ms", "timeout_ms", "initial_delay_ms",
        "successes_before_passing", "failures_before_critical", "deregister_critical_after_ms", "result"};
    members m{at, std::span(names).first(with_results ? std::size(names) : std::size(names) - 1)};
    if (!open(d, e, m) || !required(d, m, "name", out.name) || !required(d, m, "kind", out.kind)) return false;
    bool ok = true;
    switch (out.kind) {
        case check_kind::http:
            ok = only(d, m, {"name", "kind", "method", "url", "path", "expected_status", "tls_verify", "endpoint",
                             "interval_ms", "timeout_ms", "initial_delay_ms", "successes_before_passing",
                             "failures_before_critical", "deregister_critical_after_ms", "result"},
                      "http");
            break;
        case check_kind::tcp:
            ok = only(d, m, {"name", "kind", "endpoint", "address", "interval_ms", "timeout_ms", "initial_delay_ms",
                             "successes_before_passing", "failures_before_critical", "deregister_critical_after_ms",
                             "result"},
                      "tcp");
            break;
        case check_kind::ttl:
        case check_kind::script:
            ok = only(d, m, {"name", "kind", "interval_ms", "timeout_ms", "initial_delay_ms",
                             "successes_before_passing", "failures_before_critical", "deregister_critical_after_ms",
                             "result"},
                      to_string(out.kind));
            break;
    }
    if (!ok) return false;
    if (auto r = m.get("expected_status"); r && !read_status_range(d, *r, at.member("expected_status"), out)) {
        return false;
    }
    return optional(d, m, "method", out.method) && optional(d, m, "url", out.url) && optional(d, m, "path", out.path) &&
           optional(d, m, "tls_verify", out.tls_verify) && optional(d, m, "endpoint", out.endpoint) &&
           optional(d, m, "address", out.address) && optional(d, m, "interval_ms", out.interval) &&
           optional(d, m, "timeout_ms", out.timeout) && optional(d, m, "initial_delay_ms", out.initial_delay) &&
           optional(d, m, "successes_before_passing", out.successes_before_passing) &&
           optional(d, m, "failures_before_critical", out.failures_before_critical) &&
           optional(d, m, "deregister_critical_after_ms", out.deregister_critical_after) &&
           (!with_results || required(d, m, "result", out.result));
}

bool read_checks(decoder& d, dom::element e, const path& at, bool with_results, std::vector<health_check>& out) {
    dom::array items;
    if (e.get_array().get(items)) return d.fail(at, "must be an array");
    std::size_t i = 0;
    for (dom::element item : items) {
        if (i == max_checks) return d.fail(at, "at most " + std::to_string(max_checks) + " checks");
        if (!read_check(d, item, at.element(i++), with_results, out.emplace_back())) return false;
    }
    return true;
}

void write_check_change(json_writer& w, const check_change& c) {
    w.begin_object()
        .key("name").string(c.name)
        .key("kind").string(to_string(c.kind))
        .key("status").string(to_string(c.status))
        .key("previous_status").string(to_string(c.previous))
        .key("output").string(c.output)
        .key("count").number(c.count)
        .end_object();
}

}  // namespace registry::detail
