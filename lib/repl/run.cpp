// The REPL executor: one execution: its run, its output stream, its outcome.
#include "executor_impl.hpp"
#include "driver.hpp"
#include "utf8_stream.hpp"

#include <registry/cancellation.hpp>
#include <registry/when_all.hpp>

#include <algorithm>
#include <tuple>

namespace registry::repl::detail {

// What one running execution has seen of its container's output.
struct run_state {
    std::uint64_t output_bytes = 0;  // raw bytes, compile output included
    bool truncated = false;
    bool timed_out = false;
    bool natural_end = false;  // the program exited by itself
    std::optional<int> exit_code;
    std::optional<error> failure;
    detail::utf8_stream out_text, err_text;
    std::optional<detail::compile_splitter> compile_out, compile_err;
    std::optional<detail::exit_filter> exit_out, exit_err;
    std::string compile_stdout, compile_stderr;
};

}  // namespace registry::repl::detail

namespace registry::repl {

void executor::impl::emit(execution& ex, output_stream stream, std::string_view text) {
    if (text.empty()) return;
    (stream == output_stream::err ? ex.result.stderr_data : ex.result.stdout_data).append(text);
    const std::uint64_t seq = ++ex.seq;
    for (auto& l : ex.listeners) l->on_output(ex.id, stream, seq, text);
}

// Takes one chunk; false once the output cap is reached or the program
// has exited (both exit markers seen).
bool executor::impl::consume(execution& ex, run_state& st, const output_chunk& chunk) {
    const bool err = chunk.stream == output_stream::err;
    std::string_view bytes = chunk.bytes;
    std::string run_bytes;
    if (auto& split = err ? st.compile_err : st.compile_out) {
        split->feed(bytes, err ? st.compile_stderr : st.compile_stdout, run_bytes);
        bytes = run_bytes;
        const std::uint64_t compile_bytes = st.compile_stdout.size() + st.compile_stderr.size() +
                                            st.compile_out->held() + st.compile_err->held();
        if (compile_bytes > ex.lim.output_bytes) st.truncated = true;
    }
    std::string program;
    (err ? st.exit_err : st.exit_out)->feed(bytes, program);
    std::string_view out = program;
    const std::uint64_t room = ex.lim.output_bytes - std::min(ex.lim.output_bytes, st.output_bytes);
    if (out.size() > room) {
        out = out.substr(0, room);
        st.truncated = true;
    }
    st.output_bytes += out.size();
    emit(ex, chunk.stream, (err ? st.err_text : st.out_text).feed(out));
    if (st.exit_out->status() && st.exit_err->status()) {
        st.exit_code = st.exit_out->status();
        st.natural_end = true;
    }
    return !st.truncated && !st.natural_end;
}

task<void> executor::impl::pump(execution& ex, engine_state& eng, const std::string& id, engine_stream<output_chunk>& stream,
                                run_state& st, std::stop_token kill, std::stop_source& done) {
    try {
        for (auto it = co_await stream.begin(); it != stream.end(); co_await ++it) {
            auto& item = *it;
            if (!item) {
                st.failure = item.err();
                break;
            }
            const bool more = consume(ex, st, *item);
            if (!more) break;
        }
        if (!st.truncated && !st.failure && !st.natural_end) {
            // No exit markers (a failed compile, the driver killed): the
            // attach stream ended because the container stopped.
            auto code = co_await eng.slot.engine->wait(id, kill);
            if (code) {
                st.exit_code = *code;
                st.natural_end = true;
            } else {
                st.failure = code.err();
            }
        }
    } catch (const operation_cancelled&) {
        // killed: timeout or cancel
    }
    done.request_stop();
}

task<void> executor::impl::watchdog(time_point deadline, run_state& st, std::stop_source& kill, std::stop_token done) {
    const bool reached = co_await clk.sleep_until(deadline, done);
    if (reached && !done.stop_requested()) {
        st.timed_out = true;
        kill.request_stop();
    }
}

task<void> executor::impl::run_execution(execution_ptr ex_ptr, engine_state& eng) {
    execution& ex = *ex_ptr;
    ex.result.engine = eng.slot.name;
    std::stop_source kill;
    std::stop_callback forward(ex.cancel->get_token(), [&kill] { kill.request_stop(); });
    std::string container;
    run_state st;
    if (!ex.lang->compile.empty()) {
        st.compile_out.emplace(detail::compile_marker(ex.id));
        st.compile_err.emplace(detail::compile_marker(ex.id));
    }
    st.exit_out.emplace(detail::exit_marker(ex.id));
    st.exit_err.emplace(detail::exit_marker(ex.id));
    bool started = false;
    time_point t0{};
    try {
        auto acquired = co_await acquire(ex, eng);
        if (!acquired) {
            st.failure = acquired.err();
        } else {
            container = std::move(*acquired);
            if (!kill.stop_requested()) co_await run_container(ex, eng, container, st, kill, started, t0);
        }
    } catch (const operation_cancelled&) {
    } catch (const std::exception& e) {
        st.failure = error{errc::internal, std::string("internal error: ") + e.what()};
    }
    if (started) co_await last_usage(ex, eng, container);  // before its removal: then its figures are gone
    ex.result.duration = started ? std::chrono::duration_cast<milliseconds>(clk.now() - t0) : milliseconds{0};
    conclude(ex, st, started);
    finish(ex);
    if (!container.empty()) co_await discard(eng, std::move(container));
    --eng.active;
    --running_count;
    dispatch();
}

task<void> executor::impl::run_container(execution& ex, engine_state& eng, const std::string& id, run_state& st,
                                         std::stop_source& kill, bool& started, time_point& t0) {
    container_engine& engine = *eng.slot.engine;
    // The container is waiting for its files: attach first, so that no
    // output is lost, then upload them (`go` last starts the program).
    auto attached = co_await engine.attach(id, kill.get_token());
    if (!attached) {
        st.failure = attached.err();
        co_return;
    }
    engine_stream<output_chunk> stream = std::move(*attached);
    t0 = clk.now();
    started = true;
    ex.result.started_at = t0;
    auto uploaded = co_await engine.put_archive(id, std::string(detail::work_dir),
                                                detail::upload(*ex.lang, ex.req, ex.id), kill.get_token());
    if (!uploaded) {
        st.failure = uploaded.err();
        co_return;
    }
    std::stop_source done;
    co_await when_all(pump(ex, eng, id, stream, st, kill.get_token(), done),
                      watchdog(t0 + ex.lim.timeout, st, kill, done.get_token()),
                      sample_usage(ex, eng, id, done.get_token()));
}

// The outcome from what the run saw.
void executor::impl::conclude(execution& ex, run_state& st, bool started) {
    outcome& r = ex.result;
    if (!st.truncated) {  // a tail held back in case it was a marker's start
        for (auto [filter, stream, text] : {std::tuple{&st.exit_out, output_stream::out, &st.out_text},
                                            std::tuple{&st.exit_err, output_stream::err, &st.err_text}}) {
            std::string tail;
            (*filter)->finish(tail);
            emit(ex, stream, text->feed(tail));
        }
    }
    emit(ex, output_stream::out, st.out_text.finish());
    emit(ex, output_stream::err, st.err_text.finish());
    r.truncated = st.truncated;
    r.timed_out = st.timed_out;
    r.cancelled = ex.cancel_requested && !st.natural_end;
    if (st.compile_out) {
        st.compile_out->finish(st.compile_stdout);
        st.compile_err->finish(st.compile_stderr);
        auto status = st.compile_out->status() ? st.compile_out->status() : st.compile_err->status();
        const bool compile_ran = status || st.natural_end || !st.compile_stdout.empty() || !st.compile_stderr.empty();
        if (compile_ran) {
            compile_outcome c;
            c.exit_code = status ? *status : st.exit_code.value_or(-1);
            c.stdout_data = detail::to_valid_utf8(st.compile_stdout);
            c.stderr_data = detail::to_valid_utf8(st.compile_stderr);
            r.compile = std::move(c);
        }
        if (!status || *status != 0) st.exit_code.reset();  // the program never ran
    }
    if (st.natural_end) {
        r.exit_code = st.exit_code;
        if (st.exit_code && *st.exit_code > 128 && *st.exit_code < 160) r.signal = *st.exit_code - 128;
    } else if (started && !st.failure && (st.timed_out || st.truncated || r.cancelled)) {
        r.signal = 9;  // SIGKILL: the container is removed by force
    }
    if (st.failure && !r.cancelled && !r.timed_out && !r.truncated) r.failure = st.failure;
}

}  // namespace registry::repl
