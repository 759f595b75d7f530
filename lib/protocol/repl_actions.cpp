// The REPL actions (docs/protocol.md, "REPL execution"): repl_languages,
// repl_execute and repl_cancel, and the events an execution sends to the
// connections that asked for it: repl_queued, repl_output, repl_finished.
#include "session.hpp"

#include "codec/json_writer.hpp"
#include "response.hpp"

#include <registry/repl/executor.hpp>

namespace registry::protocol {

namespace {

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
    w.key("execution_id").string(o.execution_id).key("language").string(o.language).key("engine").string(o.engine);
    w.key("exit_code");
    if (o.exit_code) {
        w.number(*o.exit_code);
    } else {
        w.null();
    }
    w.key("signal");
    if (o.signal) {
        w.number(*o.signal);
    } else {
        w.null();
    }
    w.key("stdout").string(o.stdout_data).key("stderr").string(o.stderr_data);
    w.key("truncated").boolean(o.truncated).key("timed_out").boolean(o.timed_out).key("cancelled").boolean(o.cancelled);
    w.key("duration_ms").number(o.duration.count());
    if (o.compile) {
        w.key("compile").begin_object()
            .key("exit_code").number(o.compile->exit_code)
            .key("stdout").string(o.compile->stdout_data)
            .key("stderr").string(o.compile->stderr_data)
            .end_object();
    }
    if (o.failure) {
        w.key("error").begin_object()
            .key("code").string(to_string(o.failure->code))
            .key("message").string(o.failure->message)
            .end_object();
    }
}

result<repl::executor*> executor_of(server& srv) {
    repl::executor* e = srv.repl();
    if (!e) return fail(errc::unavailable, "REPL execution is not enabled on this server (repl.enabled)");
    return e;
}

}  // namespace

// Sends an execution's events to one connection, tagged with the id of the
// repl_execute request they answer (that connection's, when several asked
// for one execution by its idempotency key), so that a client can route them
// as it routes responses. It holds the session, as every handler does: after
// the connection has gone, sends are refused.
class repl_listener final : public repl::listener {
public:
    repl_listener(std::shared_ptr<session> s, std::string request_id)
        : session_(std::move(s)), request_id_(std::move(request_id)) {}

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
        session_.reset();  // nothing more to say
    }

private:
    void send(std::string text) {
        if (session_) session_->send(frame{std::move(text), nullptr, frame_kind::event});
    }

    std::shared_ptr<session> session_;
    std::string request_id_;
};

task<result<void>> session::on(call& c, repl_languages_params&) {
    auto e = executor_of(srv_);
    if (!e) co_return unexpected{e.err()};
    c.answered = true;
    send(frame{encode_response(c.id, [&](detail::json_writer& w) {
                   w.begin_object().key("languages").begin_array();
                   for (const auto& l : (*e)->languages()) {
                       w.begin_object()
                           .key("name").string(l.name)
                           .key("version").string(l.version)
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
               }),
               nullptr, frame_kind::response});
    co_return result<void>{};
}

task<result<void>> session::on(call& c, repl_execute_params& p) {
    auto e = executor_of(srv_);
    if (!e) co_return unexpected{e.err()};
    auto listener = std::make_shared<repl_listener>(shared_from_this(), c.id);
    // The response goes out in `accepted`, before the execution reports anything.
    auto accepted = [&](const repl::submission& s) {
        c.answered = true;
        send(frame{encode_response(c.id, [&](detail::json_writer& w) {
                       w.begin_object().key("execution_id").string(s.execution_id).key("created").boolean(s.created)
                           .end_object();
                   }),
                   nullptr, frame_kind::response});
    };
    auto submitted = (*e)->execute(std::move(p.req), std::move(listener), accepted);
    if (!submitted) co_return unexpected{submitted.err()};
    co_return result<void>{};
}

task<result<void>> session::on(call& c, repl_cancel_params& p) {
    auto e = executor_of(srv_);
    if (!e) co_return unexpected{e.err()};
    auto cancelled = (*e)->cancel(p.execution_id);
    if (!cancelled) co_return unexpected{cancelled.err()};
    c.answered = true;
    send(frame{encode_response(c.id, [&](detail::json_writer& w) {
                   w.begin_object().key("execution_id").string(p.execution_id).end_object();
               }),
               nullptr, frame_kind::response});
    co_return result<void>{};
}

}  // namespace registry::protocol
