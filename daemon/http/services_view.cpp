#include "http/services_view.hpp"

#include "codec/json_writer.hpp"
#include "codec/service_record.hpp"
#include "http/url_encoding.hpp"

#include <registry/registry.hpp>

#include <algorithm>
#include <charconv>
#include <vector>

namespace registryd {

namespace {

using registry::detail::json_writer;

constexpr std::string_view prefix = "/v1/services";
// Names and ids in the protocol are far shorter; this bounds what an error
// message quotes back.
constexpr std::size_t max_quoted = 128;

view_answer error(unsigned status, std::string_view code, std::string_view message) {
    view_answer a;
    a.status = status;
    json_writer w(a.body);
    w.begin_object().key("code").string(code).key("message").string(message).end_object();
    a.body += '\n';
    return a;
}

std::string quoted(std::string_view s) {
    return "'" + std::string(s.substr(0, max_quoted)) + (s.size() > max_quoted ? "...'" : "'");
}

struct query {
    std::optional<std::string> name;
    std::optional<registry::service_state> state;
    std::optional<std::size_t> limit;
    std::optional<std::string> after;
};

// Parses `q` (without the '?'); `with_name`: whether name= is allowed.
// Every parameter at most once, none unknown, none empty: the first one
// that is not stops it (the request line is bounded by the header limit).
std::optional<view_answer> parse_query(std::string_view q, bool with_name, query& out) {
    while (!q.empty()) {
        const auto amp = q.find('&');
        const std::string_view pair = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        const std::string_view key = pair.substr(0, eq);
        const auto value = url_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
        if (!value) return error(400, "invalid_request", "query parameter " + quoted(key) + ": bad percent-encoding");
        if (value->empty()) return error(400, "invalid_request", "query parameter " + quoted(key) + ": empty value");
        auto once = [&](auto& field) -> std::optional<view_answer> {
            if (field) return error(400, "invalid_request", "query parameter " + quoted(key) + " given twice");
            return std::nullopt;
        };
        if (key == "name" && with_name) {
            if (auto e = once(out.name)) return e;
            out.name = *value;
        } else if (key == "state") {
            if (auto e = once(out.state)) return e;
            out.state = registry::parse_service_state(*value);
            if (!out.state) return error(400, "invalid_request", "query parameter 'state': no state " + quoted(*value));
        } else if (key == "limit") {
            if (auto e = once(out.limit)) return e;
            std::size_t n = 0;
            const auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
            if (ec != std::errc{} || end != value->data() + value->size() || n == 0)
                return error(400, "invalid_request", "query parameter 'limit': a positive integer is required");
            out.limit = n;
        } else if (key == "after") {
            if (auto e = once(out.after)) return e;
            out.after = *value;
        } else if (key == "access_token") {
            // The caller's token, read by the access gate (access/credentials.hpp).
        } else {
            return error(400, "invalid_request",
                         "unknown query parameter " + quoted(key) +
                             (with_name ? " (name, state, limit, after)" : " (state, limit, after)"));
        }
    }
    return std::nullopt;
}

// One page of `found` (in instance_id order) after `after`.
view_answer page(const registry::registry& reg, const registry::identity& viewer,
                 const std::vector<registry::service_ptr>& found, const query& q,
                 std::size_t max_page_items, std::optional<std::string_view> name) {
    const std::size_t limit = std::min(q.limit.value_or(max_page_items), max_page_items);
    auto first = found.begin();
    if (q.after) {
        first = std::upper_bound(found.begin(), found.end(), *q.after,
                                 [](std::string_view id, const registry::service_ptr& s) { return id < s->instance_id; });
    }
    const auto available = static_cast<std::size_t>(found.end() - first);
    const std::size_t n = std::min(limit, available);

    view_answer a;
    std::size_t capacity = 64;
    for (auto it = first; it != first + static_cast<std::ptrdiff_t>(n); ++it)
        capacity += registry::detail::service_json_capacity(**it) + 1;
    a.body.reserve(capacity);
    json_writer w(a.body);
    w.begin_object().key("revision").number(reg.revision());
    if (name) w.key("name").string(*name);
    w.key("limit").number(limit).key("services").begin_array();
    for (auto it = first; it != first + static_cast<std::ptrdiff_t>(n); ++it) {
        registry::detail::write_service(w, **it, viewer.may_act_for((*it)->lease.holder));
    }
    w.end_array();
    if (n < available) {
        w.key("after").string((*(first + static_cast<std::ptrdiff_t>(n) - 1))->instance_id);
        w.key("remaining").number(available - n);
    }
    w.end_object();
    a.body += '\n';
    return a;
}

}  // namespace

std::optional<view_answer> answer_services_view(std::string_view method, std::string_view target,
                                                const registry::registry& reg, std::size_t max_page_items,
                                                const registry::identity& viewer) {
    const auto qmark = target.find('?');
    const std::string_view path = target.substr(0, qmark);
    const std::string_view raw_query = qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1);
    if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
    std::string_view rest = path.substr(prefix.size());
    if (!rest.empty() && rest.front() != '/') return std::nullopt;  // /v1/servicesX
    if (rest == "/") rest = {};

    if (method != "GET") {
        view_answer a = error(405, "invalid_request", "the registry view is read-only: GET only");
        a.allow = "GET";
        return a;
    }

    query q;
    if (rest.empty()) {
        if (auto bad = parse_query(raw_query, true, q)) return bad;
        registry::service_filter filter;
        filter.name = q.name;
        filter.state = q.state;
        return page(reg, viewer, reg.list(filter), q, max_page_items, std::nullopt);
    }

    const std::string_view encoded_name = rest.substr(1);
    if (encoded_name.find('/') != std::string_view::npos) {
        return error(404, "not_found", "no such resource: /v1/services/NAME has no sub-resources");
    }
    const auto name = url_decode(encoded_name);
    if (!name) return error(400, "invalid_request", "the service name in the path: bad percent-encoding");
    if (auto bad = parse_query(raw_query, false, q)) return bad;
    registry::service_filter filter;
    filter.name = *name;
    const auto all = reg.list(filter);
    if (all.empty()) return error(404, "not_found", "no instance of service " + quoted(*name));
    std::vector<registry::service_ptr> found;
    if (q.state) {
        for (const auto& s : all)
            if (s->state == *q.state) found.push_back(s);
    } else {
        found = all;
    }
    return page(reg, viewer, found, q, max_page_items, *name);
}

}  // namespace registryd
