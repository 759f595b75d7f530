// The REPL module (docs/protocol.md, "REPL execution"): repl_languages,
// repl_execute and repl_cancel on the embedder's repl::executor,
// repl_result and repl_history on its repl::result_store, and the
// events an execution sends to the connections that asked for it:
// repl_queued, repl_output, repl_finished. The embedder registers it
// (protocol/repl.hpp) when REPL execution is enabled.
#include "actions.hpp"

#include "../request_context.hpp"
#include "../server_impl.hpp"
#include "codec/json_writer.hpp"
#include "repl/outcome_json.hpp"

#include <registry/protocol/repl.hpp>
#include <registry/repl/executor.hpp>
#include <registry/repl/result_store.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace registry::protocol {

namespace {

struct repl_languages_params {
    static constexpr std::string_view action = "repl_languages";
};

struct repl_execute_params {
    static constexpr std::string_view action = "repl_execute";
    repl::request req;
};

struct repl_cancel_params {
    static constexpr std::string_view action = "repl_cancel";
    std::string execution_id;
};

struct repl_result_params {
    static constexpr std::string_view action = "repl_result";
    std::string execution_id;
};

struct repl_history_params {
    static constexpr std::string_view action = "repl_history";
    std::uint64_t limit = 50;
    std::optional<std::string> owner;
};

}  // namespace

}  // namespace registry::protocol

namespace registry::detail {

using namespace protocol;  // the params types

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

static bool read_params(decoder& d, const params_element& e, const path& at, repl_languages_params&) {
    members m{at, {}};
    return open(d, e, m);
}

static bool read_params(decoder& d, const params_element& e, const path& at, repl_execute_params& p) {
    static constexpr std::string_view names[] = {"language", "version", "code",   "files",
                                                 "stdin",    "args",    "limits", "idempotency_key"};
    members m{at, names};
    auto& r = p.req;
    if (!open(d, e, m) || !required(d, m, "language", r.language) || !optional(d, m, "version", r.version)) {
        return false;
    }
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

static bool read_params(decoder& d, const params_element& e, const path& at, repl_cancel_params& p) {
    static constexpr std::string_view names[] = {"execution_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "execution_id", p.execution_id);
}

static bool read_params(decoder& d, const params_element& e, const path& at, repl_result_params& p) {
    static constexpr std::string_view names[] = {"execution_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "execution_id", p.execution_id);
}

static bool read_params(decoder& d, const params_element& e, const path& at, repl_history_params& p) {
    static constexpr std::string_view names[] = {"limit", "owner"};
    members m{at, names};
    if (!open(d, e, m) || !optional(d, m, "limit", p.limit) || !optional(d, m, "owner", p.owner)) return false;
    if (p.limit < 1 || p.limit > 1000) return d.fail(at.member("limit"), "must be 1-1000");
    return true;
}

}  // namespace registry::detail

namespace registry::protocol {

namespace {

struct repl_module final : module {
    repl_module(repl::executor& e, repl::result_store* r) : executor(e), results(r) {}

    repl::executor& executor;
    repl::result_store* results;  // null: results are not kept
};

void write_limits(detail::json_writer& w, const repl::limits& l) {
    w.begin_object()
        .key("timeout_ms").number(l.timeout.count())
        .key("output_bytes").number(l.output_bytes)
        .key("memory_bytes").number(l.memory_bytes)
        .key("pids").number(l.pids)
        .key("cpu_millicores").number(l.cpu_millicores)
        .key("network").boolean(l.network)
        .end_object();
}

// {"type":"event","event":"<name>","request_id":"<id>","data":{...}}
template <typename WriteData>
std::string encode_event(std::string_view name, std::string_view request_id, WriteData&& write_data) {
    std::string text;
    detail::json_writer w(text);
    w.begin_object().key("type").string("event").key("event").string(name).key("request_id").string(request_id)
        .key("data").begin_object();
    write_data(w);
    w.end_object().end_object();
    return text;
}

void write_finished(detail::json_writer& w, const repl::outcome& o) {
    repl::detail::write_outcome(w, o, repl::detail::outcome_view::finished);
}

}  // namespace

// Sends an execution's events to one connection, tagged with the id of the
// repl_execute request they answer (that connection's, when several asked
// for one execution by its idempotency key), so that a client can route them
// as it routes responses. It holds the session, as every handler does: after
// the connection has gone, sends are refused.
class repl_listener final : public repl::listener {
public:
    repl_listener(event_channel events, std::string request_id)
        : events_(std::move(events)), request_id_(std::move(request_id)) {}

    void on_queued(const std::string& id, std::size_t position) override {
        send(encode_event("repl_queued", request_id_, [&](detail::json_writer& w) {
            w.key("execution_id").string(id).key("position").number(position);
        }));
    }

    void on_output(const std::string& id, output_stream stream, std::uint64_t seq, std::string_view data) override {
        send(encode_event("repl_output", request_id_, [&](detail::json_writer& w) {
            w.key("execution_id").string(id).key("stream").string(to_string(stream)).key("seq").number(seq)
                .key("data").string(data);
        }));
    }

    void on_finished(const repl::outcome& o) override {
        send(encode_event("repl_finished", request_id_, [&](detail::json_writer& w) { write_finished(w, o); }));
        events_.close();  // nothing more to say
    }

private:
    void send(std::string text) { events_.send(std::move(text)); }

    event_channel events_;
    std::string request_id_;
};

namespace {

task<result<void>> on(repl_module& m, request_context& ctx, repl_languages_params&) {
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("languages").begin_array();
        const auto& langs = m.executor.languages();
        for (const auto& l : langs) {
            // The first version of a name is its default (language.hpp).
            const bool first = &*std::find_if(langs.begin(), langs.end(), [&](const repl::language& o) {
                return o.name == l.name;
            }) == &l;
            w.begin_object()
                .key("name").string(l.name)
                .key("version").string(l.version)
                .key("default").boolean(first)
                .key("image").string(l.image)
                .key("source_file").string(l.source_file)
                .key("compiled").boolean(!l.compile.empty())
                .key("warm_pool").number(l.warm_pool)
                .key("defaults");
            write_limits(w, l.defaults);
            w.key("maximum");
            write_limits(w, l.maximum);
            w.end_object();
        }
        w.end_array().end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(repl_module& m, request_context& ctx, repl_execute_params& p) {
    ctx.set_target(p.req.language);
    auto listener = std::make_shared<repl_listener>(ctx.channel(), ctx.id());
    // The response goes out in `accepted`, before the execution reports anything.
    auto accepted = [&](const repl::submission& s) {
        ctx.reply([&](detail::json_writer& w) {
            w.begin_object().key("execution_id").string(s.execution_id).key("created").boolean(s.created).end_object();
        });
    };
    auto submitted = m.executor.execute(std::move(p.req), std::move(listener), accepted, ctx.caller());
    if (!submitted) co_return unexpected{submitted.err()};
    co_return result<void>{};
}

task<result<void>> on(repl_module& m, request_context& ctx, repl_cancel_params& p) {
    ctx.set_target(p.execution_id);
    auto cancelled = m.executor.cancel(p.execution_id, ctx.caller());
    if (!cancelled) co_return unexpected{cancelled.err()};
    ctx.reply([&](detail::json_writer& w) { w.begin_object().key("execution_id").string(p.execution_id).end_object(); });
    co_return result<void>{};
}

task<result<void>> on(repl_module& m, request_context& ctx, repl_result_params& p) {
    ctx.set_target(p.execution_id);
    if (auto state = m.executor.state_of(p.execution_id, ctx.caller())) {
        ctx.reply([&](detail::json_writer& w) {
            w.begin_object().key("execution_id").string(p.execution_id).key("state").string(*state).end_object();
        });
        co_return result<void>{};
    }
    repl::outcome_ptr o = m.results ? m.results->find(p.execution_id, ctx.caller()) : nullptr;
    // Unknown, expired and another identity's look the same: nothing says which exist.
    if (!o) co_return fail(errc::not_found, "no finished execution '" + p.execution_id + "' is kept for '" +
                                                ctx.caller().name + "'");
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object();
        repl::detail::write_outcome(w, *o, repl::detail::outcome_view::result);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(repl_module& m, request_context& ctx, repl_history_params& p) {
    const identity& by = ctx.caller();
    if (p.owner && *p.owner != by.name && !by.admin) {
        co_return fail(errc::forbidden, "'" + by.name + "' may not list the executions of '" + *p.owner +
                                            "': only an admin may list another identity's");
    }
    std::vector<repl::outcome_ptr> found;
    if (m.results) found = m.results->history(by, p.limit, p.owner);
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("executions").begin_array();
        for (const auto& o : found) {
            w.begin_object();
            repl::detail::write_outcome(w, *o, repl::detail::outcome_view::summary);
            w.end_object();
        }
        w.end_array().end_object();
    });
    co_return result<void>{};
}

}  // namespace

std::unique_ptr<module> add_repl_entries(dispatch_table& t, repl::executor* executor, repl::result_store* results) {
    std::unique_ptr<repl_module> m;
    if (executor) m = std::make_unique<repl_module>(*executor, results);
    using M = repl_module;
    using detail::read_params;
    t.add(make_action<M, repl_languages_params, &read_params, &on>(permission_family::repl_read, m.get()));
    t.add(make_action<M, repl_execute_params, &read_params, &on>(permission_family::repl, m.get()));
    t.add(make_action<M, repl_cancel_params, &read_params, &on>(permission_family::repl, m.get()));
    t.add(make_action<M, repl_result_params, &read_params, &on>(permission_family::repl_read, m.get()));
    t.add(make_action<M, repl_history_params, &read_params, &on>(permission_family::repl_read, m.get()));
    return m;
}

void add_repl_actions(server& srv, repl::executor& executor, repl::result_store* results) {
    auto& shared = srv.internals();
    shared.own(add_repl_entries(shared.actions, &executor, results));
}

}  // namespace registry::protocol
