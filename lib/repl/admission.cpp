// The REPL executor: validating and accepting an execution.
#include "executor_impl.hpp"
#include "driver.hpp"

#include "codec/time.hpp"

#include <memory>
#include <string>
#include <utility>

namespace registry::repl {

namespace {

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

result<const language*> executor::impl::find_language(std::string_view name,
                                                      const std::optional<std::string>& version) const {
    std::string known;
    for (const auto& l : langs) {
        if (l.name != name) continue;
        if (!version || l.version == *version) return &l;
        known += (known.empty() ? "'" : ", '") + l.version + "'";
    }
    if (known.empty()) return fail_field("language", "unknown language '" + std::string(name) + "'");
    return fail_field("version", "unknown version '" + *version + "' of language '" + std::string(name) +
                                     "' (configured: " + known + ")");
}

result<limits> executor::impl::resolve(const language& lang, const limit_overrides& o) const {
    limits l = lang.defaults;
    const limits& max = lang.maximum;
    auto bound = [](auto value, auto maximum, const char* field) -> result<void> {
        if (value <= decltype(value){} || value > maximum) {
            return fail_field(std::string("limits.") + field, "must be 1-" + std::to_string(maximum) + " for this language");
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
            return fail_field("limits.network", "not allowed for this language");
        }
        l.network = *o.network;
    }
    return l;
}

result<void> executor::impl::check_sources(const request& req) const {
    if (req.files.empty()) return fail_field("files", "at least one file is required");
    if (req.files.size() > opts.max_files) return fail_field("files", "at most " + std::to_string(opts.max_files) + " files");
    std::size_t bytes = req.stdin_data ? req.stdin_data->size() : 0;
    for (std::size_t i = 0; i < req.files.size(); ++i) {
        const auto& f = req.files[i];
        const std::string at = "files[" + std::to_string(i) + "].name";
        if (!valid_file_name(f.name)) return fail_field(at, "must be a relative path without '.', '..' or empty components");
        if (f.name == detail::reserved_dir || f.name.starts_with(std::string(detail::reserved_dir) + "/")) {
            return fail_field(at, "'.repl' is reserved");
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (req.files[j].name == f.name) return fail_field(at, "duplicate");
        }
        bytes += f.content.size();
    }
    if (bytes > opts.max_source_bytes) {
        return fail_field("", "files and stdin exceed " + std::to_string(opts.max_source_bytes) + " bytes");
    }
    if (req.args.size() > opts.max_args) {
        return fail_field("args", "at most " + std::to_string(opts.max_args));
    }
    for (std::size_t i = 0; i < req.args.size(); ++i) {
        if (req.args[i].find('\0') != std::string::npos) {
            return fail_field("args[" + std::to_string(i) + "]", "must not contain NUL");
        }
    }
    return {};
}

std::string executor::impl::next_id() {
    // 128 random bits: knowing an id is how its owner names the execution.
    std::string id = random_id(random, "x");
    while (executions.contains(id)) id = random_id(random, "x");
    return id;
}

std::string executor::impl::key_of(std::string_view owner, std::string_view key) {
    std::string k(owner);
    k.push_back('\0');
    k.append(key);
    return k;
}

result<submission> executor::impl::execute(request req, listener_ptr l,
                                           const std::function<void(const submission&)>& accepted, const identity& by) {
    if (!accepting) return fail(errc::unavailable, "the REPL executor is not running");
    prune();
    if (req.idempotency_key) {
        if (auto sub = rejoin(key_of(by.name, *req.idempotency_key), l, accepted)) return *sub;
    }
    const bool quota = opts.max_concurrent_per_identity != 0 && !by.admin;
    if (quota) {
        auto it = active_by_owner.find(by.name);
        if (it != active_by_owner.end() && it->second >= opts.max_concurrent_per_identity) {
            return fail(errc::limit_exceeded, "quota executions_per_identity: '" + by.name + "' has its maximum of " +
                                                  std::to_string(opts.max_concurrent_per_identity) +
                                                  " executions queued or running");
        }
    }
    auto found = find_language(req.language, req.version);
    if (!found) return unexpected{found.err()};
    const language* lang = *found;
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
    ex->result.version = lang->version;
    ex->owner = by.name;
    ex->result.owner = by.name;
    ex->result.submitted_at = clk.now();
    if (quota) {
        ++active_by_owner[by.name];
        ex->counted = true;
    }
    if (l) ex->listeners.push_back(std::move(l));
    executions.emplace(ex->id, ex);
    if (ex->req.idempotency_key) by_key.emplace(key_of(ex->owner, *ex->req.idempotency_key), ex->id);
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

}  // namespace registry::repl
