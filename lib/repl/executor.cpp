#include <registry/repl/executor.hpp>

#include "driver.hpp"
#include "utf8_stream.hpp"

#include <registry/cancellation.hpp>
#include <registry/when_all.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

namespace registry::repl {

namespace {

constexpr milliseconds housekeeping_interval{1'000};

std::int64_t ms_since_epoch(time_point t) { return t.time_since_epoch().count(); }

enum class phase { queued, running, finished };

struct execution {
    std::string id;
    const language* lang = nullptr;
    request req;
    limits lim;
    bool warm_eligible = false;  // the container limits are the language's defaults
    std::vector<listener_ptr> listeners;
    phase state = phase::queued;
    std::size_t last_position = 0;
    std::optional<std::stop_source> cancel;  // libstdc++ 12: emplace, never reassign
    bool cancel_requested = false;
    outcome result;
    time_point finished_at{};
    std::uint64_t seq = 0;
};

using execution_ptr = std::shared_ptr<execution>;

struct warm_container {
    std::string id;
    time_point created;
};

struct engine_state {
    explicit engine_state(engine_slot s) : slot(std::move(s)) {}

    engine_slot slot;
    std::size_t active = 0;
    std::set<std::string, std::less<>> stranded;  // removal failed: retried by the housekeeping loop
    std::map<std::string, std::deque<warm_container>, std::less<>> warm;  // by language
    std::map<std::string, std::size_t, std::less<>> warm_creating;
};

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

std::string join_problems(const std::string& what, const std::string& problem) { return what + ": " + problem; }

bool valid_file_name(std::string_view name) {
    if (name.empty() || name.size() > 255 || name.front() == '/' || name.back() == '/') return false;
    std::size_t from = 0;
    for (;;) {
        const std::size_t slash = name.find('/', from);
        const std::string_view part = name.substr(from, slash == std::string_view::npos ? name.npos : slash - from);
        if (part.empty() || part == "." || part == "..") return false;
        if (slash == std::string_view::npos) break;
        from = slash + 1;
    }
    return name.find('\0') == std::string_view::npos;
}

}  // namespace

struct executor::impl {
    impl(clock& c, std::vector<engine_slot> slots, std::vector<language> l, executor_options o, lease_sink* s)
        : clk(c), langs(std::move(l)), opts(std::move(o)), leases(s) {
        for (auto& slot : slots) engines.emplace_back(std::move(slot));
        tasks.on_error([](std::exception_ptr) {});  // every task catches its own; never terminate the daemon
    }

    clock& clk;
    std::vector<engine_state> engines;
    std::vector<language> langs;
    executor_options opts;
    lease_sink* leases;

    std::map<std::string, execution_ptr, std::less<>> executions;  // live, and finished within the window
    std::map<std::string, std::string, std::less<>> by_key;        // idempotency key → execution id
    std::deque<execution_ptr> queue;
    std::size_t running_count = 0;
    bool accepting = false;
    std::uint64_t started = 0;
    async_scope tasks;

    const language* find_language(std::string_view name) const {
        for (const auto& l : langs) {
            if (l.name == name) return &l;
        }
        return nullptr;
    }

    // ---- accepting

    result<limits> resolve(const language& lang, const limit_overrides& o) const {
        limits l = lang.defaults;
        const limits& max = lang.maximum;
        auto bound = [](auto value, auto maximum, const char* field) -> result<void> {
            if (value <= decltype(value){} || value > maximum) {
                return fail(errc::invalid_request, std::string("params.limits.") + field + ": must be 1-" +
                                                       std::to_string(maximum) + " for this language");
            }
            return {};
        };
        if (o.timeout) {
            if (auto r = bound(o.timeout->count(), max.timeout.count(), "timeout_ms"); !r) return unexpected{r.err()};
            l.timeout = *o.timeout;
        }
        if (o.output_bytes) {
            if (auto r = bound(*o.output_bytes, max.output_bytes, "output_bytes"); !r) return unexpected{r.err()};
            l.output_bytes = *o.output_bytes;
        }
        if (o.memory_bytes) {
            if (auto r = bound(*o.memory_bytes, max.memory_bytes, "memory_bytes"); !r) return unexpected{r.err()};
            l.memory_bytes = *o.memory_bytes;
        }
        if (o.pids) {
            if (auto r = bound(*o.pids, max.pids, "pids"); !r) return unexpected{r.err()};
            l.pids = *o.pids;
        }
        if (o.cpu_millicores) {
            if (auto r = bound(*o.cpu_millicores, max.cpu_millicores, "cpu_millicores"); !r) {
                return unexpected{r.err()};
            }
            l.cpu_millicores = *o.cpu_millicores;
        }
        if (o.network) {
            if (*o.network && !max.network) {
                return fail(errc::invalid_request, "params.limits.network: not allowed for this language");
            }
            l.network = *o.network;
        }
        return l;
    }

    result<void> check_sources(const request& req) const {
        if (req.files.empty()) return fail(errc::invalid_request, "params.files: at least one file is required");
        if (req.files.size() > opts.max_files) {
            return fail(errc::invalid_request,
                        "params.files: at most " + std::to_string(opts.max_files) + " files");
        }
        std::size_t bytes = req.stdin_data ? req.stdin_data->size() : 0;
        for (std::size_t i = 0; i < req.files.size(); ++i) {
            const auto& f = req.files[i];
            const std::string at = "params.files[" + std::to_string(i) + "].name";
            if (!valid_file_name(f.name)) {
                return fail(errc::invalid_request,
                            join_problems(at, "must be a relative path without '.', '..' or empty components"));
            }
            if (f.name == detail::reserved_dir || f.name.starts_with(std::string(detail::reserved_dir) + "/")) {
                return fail(errc::invalid_request, join_problems(at, "'.repl' is reserved"));
            }
            for (std::size_t j = 0; j < i; ++j) {
                if (req.files[j].name == f.name) return fail(errc::invalid_request, join_problems(at, "duplicate"));
            }
            bytes += f.content.size();
        }
        if (bytes > opts.max_source_bytes) {
            return fail(errc::invalid_request, "params: files and stdin exceed " +
                                                   std::to_string(opts.max_source_bytes) + " bytes");
        }
        if (req.args.size() > opts.max_args) {
            return fail(errc::invalid_request, "params.args: at most " + std::to_string(opts.max_args));
        }
        for (std::size_t i = 0; i < req.args.size(); ++i) {
            if (req.args[i].find('\0') != std::string::npos) {
                return fail(errc::invalid_request, "params.args[" + std::to_string(i) + "]: must not contain NUL");
            }
        }
        return {};
    }

    // Without a sink every engine is; with one, the ones it calls online.
    bool usable(const engine_state& e) const { return !leases || leases->online(e.slot.name); }

    engine_state* free_engine() {
        engine_state* best = nullptr;
        for (auto& e : engines) {
            if (e.active >= e.slot.max_concurrent || !usable(e)) continue;
            if (!best || e.active * best->slot.max_concurrent < best->active * e.slot.max_concurrent) best = &e;
        }
        return best;
    }

    void prune() {
        const time_point now = clk.now();
        for (auto it = executions.begin(); it != executions.end();) {
            const auto& ex = *it->second;
            if (ex.state == phase::finished && now - ex.finished_at >= opts.idempotency_window) {
                if (ex.req.idempotency_key) by_key.erase(*ex.req.idempotency_key);
                it = executions.erase(it);
            } else {
                ++it;
            }
        }
    }

    std::string next_id() {
        // Unique across restarts too: the start time in ms, then a counter.
        static constexpr char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
        std::string stamp;
        for (auto v = static_cast<std::uint64_t>(ms_since_epoch(clk.now())); v; v /= 36) stamp.insert(stamp.begin(), digits[v % 36]);
        return "x" + stamp + "-" + std::to_string(++started);
    }

    result<submission> execute(request req, listener_ptr l, const std::function<void(const submission&)>& accepted) {
        if (!accepting) return fail(errc::unavailable, "the REPL executor is not running");
        prune();
        if (req.idempotency_key) {
            if (auto k = by_key.find(*req.idempotency_key); k != by_key.end()) {
                execution_ptr ex = executions.at(k->second);
                submission sub{ex->id, false};
                if (accepted) accepted(sub);
                if (ex->state == phase::finished) {
                    if (l) l->on_finished(ex->result);
                } else if (l) {
                    ex->listeners.push_back(std::move(l));
                }
                return sub;
            }
        }
        const language* lang = find_language(req.language);
        if (!lang) return fail(errc::invalid_request, "params.language: unknown language '" + req.language + "'");
        if (req.files.size() == 1 && req.files.front().name.empty()) req.files.front().name = lang->source_file;
        if (auto ok = check_sources(req); !ok) return unexpected{ok.err()};
        auto lim = resolve(*lang, req.limits);
        if (!lim) return unexpected{lim.err()};
        engine_state* eng = free_engine();
        if (!eng && queue.size() >= opts.max_queue) {
            return fail(errc::busy, "every engine is running its maximum of executions and " +
                                        std::to_string(queue.size()) + " are waiting (repl.max_queue): retry later");
        }
        auto ex = std::make_shared<execution>();
        ex->id = next_id();
        ex->lang = lang;
        ex->lim = *lim;
        const limits& d = lang->defaults;
        ex->warm_eligible = lim->memory_bytes == d.memory_bytes && lim->pids == d.pids &&
                            lim->cpu_millicores == d.cpu_millicores && lim->network == d.network;
        ex->req = std::move(req);
        ex->cancel.emplace();
        ex->result.execution_id = ex->id;
        ex->result.language = lang->name;
        if (l) ex->listeners.push_back(std::move(l));
        executions.emplace(ex->id, ex);
        if (ex->req.idempotency_key) by_key.emplace(*ex->req.idempotency_key, ex->id);
        submission sub{ex->id, true};
        if (accepted) accepted(sub);
        if (eng) {
            start(ex, *eng);
        } else {
            queue.push_back(ex);
            report_positions();
        }
        return sub;
    }

    void report_positions() {
        std::size_t position = 0;
        for (auto& ex : queue) {
            if (++position == ex->last_position) continue;
            ex->last_position = position;
            for (auto& l : ex->listeners) l->on_queued(ex->id, position);
        }
    }

    void dispatch() {
        bool moved = false;
        while (!queue.empty()) {
            engine_state* eng = free_engine();
            if (!eng) break;
            execution_ptr ex = std::move(queue.front());
            queue.pop_front();
            start(ex, *eng);
            moved = true;
        }
        if (moved) report_positions();
    }

    void start(const execution_ptr& ex, engine_state& eng) {
        ex->state = phase::running;
        ++eng.active;
        ++running_count;
        tasks.spawn(run_execution(ex, eng));
    }

    void finish(execution& ex) {
        ex.state = phase::finished;
        ex.finished_at = clk.now();
        auto listeners = std::move(ex.listeners);
        ex.listeners.clear();
        for (auto& l : listeners) l->on_finished(ex.result);
    }

    result<void> cancel(std::string_view id) {
        auto it = executions.find(id);
        if (it == executions.end()) return fail(errc::not_found, "no execution '" + std::string(id) + "'");
        execution_ptr ex = it->second;
        if (ex->state == phase::queued) {
            queue.erase(std::find(queue.begin(), queue.end(), ex));
            ex->result.cancelled = true;
            finish(*ex);
            report_positions();
        } else if (ex->state == phase::running && !ex->cancel_requested) {
            ex->cancel_requested = true;
            ex->cancel->request_stop();
        }
        return {};
    }

    // ---- containers

    container_spec spec_for(const language& lang, const limits& lim, std::string_view execution_id,
                            time_point deadline) const {
        container_spec spec;
        spec.image = lang.image;
        spec.command = detail::driver_command();
        spec.env = {{"HOME", std::string(detail::work_dir)}, {"TMPDIR", "/tmp"}, {"LANG", "C.UTF-8"}};
        if (leases) spec.labels = leases->lease_labels(deadline);
        spec.labels.emplace(repl_labels::marker, "1");
        spec.labels.emplace(repl_labels::language, lang.name);
        if (!execution_id.empty()) spec.labels.emplace(repl_labels::execution, execution_id);
        spec.limits.memory_bytes = lim.memory_bytes;
        spec.limits.pids = lim.pids;
        spec.limits.cpus = lim.cpu_millicores / 1000.0;
        spec.network = lim.network ? container_network::default_ : container_network::none;
        spec.read_only_rootfs = true;
        spec.user = opts.user;
        spec.tmpfs = {{std::string(detail::work_dir),
                       "rw,nosuid,nodev,size=" + std::to_string(opts.work_dir_bytes) + ",mode=1777"},
                      {"/tmp", "rw,nosuid,nodev,size=16m,mode=1777"}};
        spec.drop_all_capabilities = true;
        spec.no_new_privileges = true;
        return spec;
    }

    // Creates a container, reports it to the lease sink and starts it (its
    // command waits for its program: driver.hpp); the id, or the error (the
    // container is already removed then). Not cancellable: a create cut short
    // could leave a container nobody knows of.
    task<result<std::string>> create(engine_state& eng, container_spec spec, time_point deadline) {
        auto id = co_await eng.slot.engine->create(std::move(spec));
        if (!id) co_return unexpected{id.err()};
        result<void> ready;
        if (leases) ready = co_await leases->container_created(eng.slot.name, *id, deadline);
        if (ready) ready = co_await eng.slot.engine->start(*id);
        if (!ready) {
            co_await discard(eng, *id);
            co_return unexpected{ready.err()};
        }
        co_return std::move(*id);
    }

    // Removes a container whatever happens (never cancelled: it must go). An
    // engine may refuse while the container is still exiting: retried with
    // a backoff, then by the housekeeping loop.
    task<void> discard(engine_state& eng, std::string id) {
        bool gone = false;
        for (int attempt = 0; attempt < 4 && !gone; ++attempt) {
            if (attempt > 0) co_await clk.sleep_until(clk.now() + milliseconds(100 << attempt));
            try {
                auto removed = co_await eng.slot.engine->remove(id, true);
                gone = removed || removed.err().code == errc::not_found;
            } catch (...) {
            }
        }
        if (!gone) {
            eng.stranded.insert(std::move(id));
            co_return;
        }
        eng.stranded.erase(id);
        if (leases) {
            try {
                co_await leases->container_removed(eng.slot.name, id);
            } catch (...) {
            }
        }
    }

    std::optional<std::string> take_warm(engine_state& eng, const language& lang) {
        auto it = eng.warm.find(lang.name);
        if (it == eng.warm.end()) return std::nullopt;
        const time_point now = clk.now();
        while (!it->second.empty()) {
            warm_container w = std::move(it->second.front());
            it->second.pop_front();
            if (now - w.created < opts.warm_max_age) return std::move(w.id);
            tasks.spawn(discard(eng, std::move(w.id)));
        }
        return std::nullopt;
    }

    task<result<std::string>> acquire(execution& ex, engine_state& eng) {
        if (ex.warm_eligible) {
            if (auto id = take_warm(eng, *ex.lang)) {
                fill_pools();
                co_return std::move(*id);
            }
        }
        const time_point deadline = clk.now() + ex.lim.timeout + opts.lease_grace;
        auto id = co_await create(eng, spec_for(*ex.lang, ex.lim, ex.id, deadline), deadline);
        if (!id && id.err().code == errc::not_found) {
            co_return fail(errc::not_found, "image '" + ex.lang->image + "' of language '" + ex.lang->name +
                                                "' is not on engine '" + eng.slot.name +
                                                "' (build it: scripts/build-repl-images.sh): " + id.err().message);
        }
        co_return id;
    }

    // ---- running

    void emit(execution& ex, output_stream stream, std::string_view text) {
        if (text.empty()) return;
        (stream == output_stream::err ? ex.result.stderr_data : ex.result.stdout_data).append(text);
        const std::uint64_t seq = ++ex.seq;
        for (auto& l : ex.listeners) l->on_output(ex.id, stream, seq, text);
    }

    // Takes one chunk; false once the output cap is reached or the program
    // has exited (both exit markers seen).
    bool consume(execution& ex, run_state& st, const output_chunk& chunk) {
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

    task<void> pump(execution& ex, engine_state& eng, const std::string& id, engine_stream<output_chunk>& stream,
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

    task<void> watchdog(time_point deadline, run_state& st, std::stop_source& kill, std::stop_token done) {
        const bool reached = co_await clk.sleep_until(deadline, done);
        if (reached && !done.stop_requested()) {
            st.timed_out = true;
            kill.request_stop();
        }
    }

    task<void> run_execution(execution_ptr ex_ptr, engine_state& eng) {
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
        ex.result.duration = started ? std::chrono::duration_cast<milliseconds>(clk.now() - t0) : milliseconds{0};
        conclude(ex, st, started);
        finish(ex);
        if (!container.empty()) co_await discard(eng, std::move(container));
        --eng.active;
        --running_count;
        dispatch();
    }

    task<void> run_container(execution& ex, engine_state& eng, const std::string& id, run_state& st,
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
        auto uploaded = co_await engine.put_archive(id, std::string(detail::work_dir),
                                                    detail::upload(*ex.lang, ex.req, ex.id), kill.get_token());
        if (!uploaded) {
            st.failure = uploaded.err();
            co_return;
        }
        std::stop_source done;
        co_await when_all(pump(ex, eng, id, stream, st, kill.get_token(), done),
                          watchdog(t0 + ex.lim.timeout, st, kill, done.get_token()));
    }

    // The outcome from what the run saw.
    void conclude(execution& ex, run_state& st, bool started) {
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

    // ---- warm pools

    void fill_pools() {
        if (!accepting) return;
        for (auto& eng : engines) {
            if (!usable(eng)) continue;
            for (const auto& lang : langs) {
                const std::size_t have = eng.warm[lang.name].size() + eng.warm_creating[lang.name];
                for (std::size_t i = have; i < lang.warm_pool; ++i) {
                    ++eng.warm_creating[lang.name];
                    tasks.spawn(create_warm(eng, lang));
                }
            }
        }
    }

    task<void> create_warm(engine_state& eng, const language& lang) {
        const time_point deadline = clk.now() + opts.warm_max_age + lang.maximum.timeout + opts.lease_grace;
        auto id = co_await create(eng, spec_for(lang, lang.defaults, {}, deadline), deadline);
        --eng.warm_creating[lang.name];
        if (!id) co_return;  // retried by the housekeeping loop
        if (accepting) {
            eng.warm[lang.name].push_back({std::move(*id), clk.now()});
        } else {
            co_await discard(eng, std::move(*id));
        }
    }

    void retry_stranded() {
        for (auto& eng : engines) {
            for (const auto& id : std::exchange(eng.stranded, {})) tasks.spawn(discard(eng, id));
        }
    }

    void replace_aged() {
        const time_point now = clk.now();
        for (auto& eng : engines) {
            for (auto& [name, pool] : eng.warm) {
                while (!pool.empty() && now - pool.front().created >= opts.warm_max_age) {
                    tasks.spawn(discard(eng, std::move(pool.front().id)));
                    pool.pop_front();
                }
            }
        }
    }

    // ---- lifecycle

    task<void> run(std::stop_token stop) {
        accepting = true;
        for (;;) {
            dispatch();  // executions queued while no engine was online
            prune();
            retry_stranded();
            replace_aged();
            fill_pools();
            const bool slept = co_await clk.sleep_until(clk.now() + housekeeping_interval, stop);
            if (!slept) break;
        }
        accepting = false;
        while (!queue.empty()) {
            execution_ptr ex = std::move(queue.front());
            queue.pop_front();
            ex->result.cancelled = true;
            finish(*ex);
        }
        for (auto& [id, ex] : executions) {
            if (ex->state == phase::running) {
                ex->cancel_requested = true;
                ex->cancel->request_stop();
            }
        }
        co_await tasks.join();
        std::vector<task<void>> removals;
        for (auto& eng : engines) {
            for (const auto& id : std::exchange(eng.stranded, {})) removals.push_back(discard(eng, id));
            for (auto& [name, pool] : eng.warm) {
                for (auto& w : pool) removals.push_back(discard(eng, std::move(w.id)));
                pool.clear();
            }
        }
        co_await when_all(std::move(removals));
    }
};

executor::executor(clock& clk, std::vector<engine_slot> engines, std::vector<language> languages,
                   executor_options options, lease_sink* leases)
    : impl_(std::make_unique<impl>(clk, std::move(engines), std::move(languages), std::move(options), leases)) {}

executor::~executor() = default;

task<void> executor::run(std::stop_token stop) { return impl_->run(std::move(stop)); }

const std::vector<language>& executor::languages() const noexcept { return impl_->langs; }

result<submission> executor::execute(request req, listener_ptr l,
                                     const std::function<void(const submission&)>& accepted) {
    return impl_->execute(std::move(req), std::move(l), accepted);
}

result<void> executor::cancel(std::string_view execution_id) { return impl_->cancel(execution_id); }

std::size_t executor::running() const noexcept { return impl_->running_count; }
std::size_t executor::queued() const noexcept { return impl_->queue.size(); }

std::size_t executor::warm(std::string_view language) const noexcept {
    std::size_t n = 0;
    for (const auto& e : impl_->engines) {
        if (auto it = e.warm.find(language); it != e.warm.end()) n += it->second.size();
    }
    return n;
}

}  // namespace registry::repl
