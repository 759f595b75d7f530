// A container_engine port for library tests: containers are records in a
// map, "running" until the test says they exit. Waits and log follows
// suspend until something changes and resume inline. A test can take the
// engine offline (every call then fails with unavailable, and pending waits
// and follows fail too) and make removals fail a number of times.
#pragma once

#include <registry/cancellation.hpp>
#include <registry/ports/container_engine.hpp>

#include <algorithm>
#include <coroutine>
#include <map>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

namespace registry::testing {

class memory_engine final : public container_engine {
public:
    struct container {
        container_spec spec;
        container_status status = container_status::created;
        int exit_code = 0;
        std::vector<output_chunk> output;
        std::optional<time_point> started_at;  // stamped from `clk`, if set
        std::optional<time_point> finished_at;
        std::string error;  // what inspect reports as the engine's error
        container_stats figures;  // what stats reports while it runs
    };

    explicit memory_engine(std::string name = "engine") : name_(std::move(name)) { images.insert("img"); }

    // ---- what the test controls and observes
    std::set<std::string> images;     // what create accepts
    bool offline = false;             // every call fails with unavailable
    int remove_failures = 0;          // the next this many stop/remove calls fail with unavailable
    std::size_t remove_calls = 0;
    std::size_t stop_calls = 0;
    const clock* clk = nullptr;  // when set, start and exit stamp the container's times

    const std::map<std::string, container>& containers() const noexcept { return containers_; }
    bool exists(const std::string& id) const { return containers_.contains(id); }

    // Adds a container as if made by someone (or some earlier process).
    std::string add(container_spec spec, container_status status) {
        const std::string id = name_ + "-c" + std::to_string(++created_);
        containers_[id] = container{std::move(spec), status, 0, {}, {}, {}, {}, {}};
        return id;
    }
    void write(const std::string& id, std::string text, output_stream s = output_stream::out) {
        containers_.at(id).output.push_back(output_chunk{s, std::move(text)});
        notify();
    }
    void exit(const std::string& id, int code) {
        auto& c = containers_.at(id);
        c.status = container_status::exited;
        c.exit_code = code;
        if (clk) c.finished_at = clk->now();
        notify();
    }
    // What inspect reports as the engine's error running it (State.Error).
    void set_error(const std::string& id, std::string error) { containers_.at(id).error = std::move(error); }
    void go_offline() {
        offline = true;
        notify();
    }

    // ---- the port
    task<result<void>> ping(std::stop_token = {}) override {
        if (offline) co_return down();
        co_return result<void>{};
    }
    task<result<engine_info>> version(std::stop_token = {}) override {
        if (offline) co_return down();
        co_return engine_info{"Memory Engine", "1", "1.41", "linux", "amd64"};
    }
    task<result<std::string>> create(container_spec spec, std::stop_token = {}) override {
        if (offline) co_return down();
        if (!images.contains(spec.image)) co_return fail(errc::not_found, "no such image: " + spec.image);
        co_return add(std::move(spec), container_status::created);
    }
    task<result<void>> start(std::string id, std::stop_token = {}) override {
        if (offline) co_return down();
        auto it = containers_.find(id);
        if (it == containers_.end()) co_return missing(id);
        if (it->second.status == container_status::created) {
            it->second.status = container_status::running;
            if (clk) it->second.started_at = clk->now();
        }
        co_return result<void>{};
    }
    task<result<void>> stop(std::string id, std::chrono::seconds, std::stop_token = {}) override {
        ++stop_calls;
        if (offline) co_return down();
        if (remove_failures > 0) {
            --remove_failures;
            co_return fail(errc::unavailable, "engine busy");
        }
        auto it = containers_.find(id);
        if (it == containers_.end()) co_return missing(id);
        if (it->second.status == container_status::running) exit(id, 137);
        co_return result<void>{};
    }
    task<result<void>> remove(std::string id, bool force, std::stop_token = {}) override {
        ++remove_calls;
        if (offline) co_return down();
        auto it = containers_.find(id);
        if (it == containers_.end()) co_return missing(id);
        if (it->second.status == container_status::running && !force) {
            co_return fail(errc::conflict, "container " + id + " is running");
        }
        containers_.erase(it);
        notify();
        co_return result<void>{};
    }
    task<result<container_info>> inspect(std::string id, std::stop_token = {}) override {
        if (offline) co_return down();
        auto it = containers_.find(id);
        if (it == containers_.end()) co_return missing(id);
        container_info info;
        info.id = id;
        info.name = it->second.spec.name.empty() ? id + "-name" : it->second.spec.name;
        info.image = it->second.spec.image;
        info.labels = it->second.spec.labels;
        info.state.status = it->second.status;
        info.state.running = it->second.status == container_status::running;
        info.state.exit_code = it->second.exit_code;
        info.state.started_at = it->second.started_at;
        info.state.finished_at = it->second.finished_at;
        info.state.error = it->second.error;
        info.command = it->second.spec.command;
        info.limits = it->second.spec.limits;
        co_return info;
    }
    task<result<container_stats>> stats(std::string id, std::stop_token = {}) override {
        if (offline) co_return down();
        auto it = containers_.find(id);
        if (it == containers_.end()) co_return missing(id);
        if (it->second.status != container_status::running) co_return container_stats{};  // its cgroup is gone
        co_return it->second.figures;
    }
    // What stats reports for the container while it runs.
    void set_figures(const std::string& id, container_stats s) { containers_.at(id).figures = s; }
    task<result<std::vector<container_summary>>> list(label_selector labels, std::stop_token = {}) override {
        if (offline) co_return down();
        std::vector<container_summary> out;
        for (const auto& [id, c] : containers_) {
            const bool all = std::all_of(labels.terms.begin(), labels.terms.end(), [&](const auto& t) {
                auto l = c.spec.labels.find(t.key);
                return l != c.spec.labels.end() && (!t.value || l->second == *t.value);
            });
            if (all) out.push_back(container_summary{id, c.spec.name, c.spec.image, c.spec.labels, c.status, {}, {}});
        }
        co_return out;
    }
    task<result<int>> wait(std::string id, std::stop_token cancel = {}) override {
        while (true) {
            if (offline) co_return down();
            auto it = containers_.find(id);
            if (it == containers_.end()) co_return missing(id);
            if (it->second.status != container_status::running) co_return it->second.exit_code;
            change c{*this, cancel};
            co_await c;
        }
    }
    task<result<engine_stream<output_chunk>>> logs(std::string id, log_options options,
                                                   std::stop_token cancel = {}) override {
        if (offline) co_return down();
        if (!containers_.contains(id)) co_return missing(id);
        co_return read_logs(std::move(id), options, std::move(cancel));
    }
    task<result<engine_stream<output_chunk>>> attach(std::string, std::stop_token = {}) override {
        co_return fail(errc::internal, "memory_engine: attach is not implemented");
    }
    task<result<void>> put_archive(std::string, std::string, std::vector<archive_file>, std::stop_token = {}) override {
        co_return fail(errc::internal, "memory_engine: put_archive is not implemented");
    }
    task<result<engine_stream<pull_progress>>> pull_image(std::string reference, std::stop_token = {}) override {
        if (offline) co_return down();
        co_return pulling(std::move(reference));
    }

private:
    static unexpected down() { return fail(errc::unavailable, "memory engine is offline"); }
    static unexpected missing(const std::string& id) { return fail(errc::not_found, "no such container: " + id); }

    engine_stream<pull_progress> pulling(std::string reference) {
        // Named values: GCC 12 mishandles temporaries in co_yield.
        if (reference == "missing") {
            result<pull_progress> unknown = fail(errc::not_found, "manifest unknown: " + reference);
            co_yield unknown;
            co_return;
        }
        result<pull_progress> downloading = pull_progress{"layer1", "Downloading", "[==>   ]", 10, 100};
        co_yield downloading;
        images.insert(reference);
        result<pull_progress> complete = pull_progress{"layer1", "Download complete", "", std::nullopt, std::nullopt};
        co_yield complete;
    }

    engine_stream<output_chunk> read_logs(std::string id, log_options options, std::stop_token cancel) {
        std::size_t next = 0;
        if (options.tail) {
            const std::size_t size = containers_.at(id).output.size();
            next = size > *options.tail ? size - *options.tail : 0;
        }
        while (true) {
            if (offline) {
                result<output_chunk> failed = down();
                co_yield failed;
                co_return;
            }
            auto it = containers_.find(id);
            if (it == containers_.end()) co_return;
            while (next < it->second.output.size()) {
                result<output_chunk> chunk = it->second.output[next++];
                co_yield chunk;
                it = containers_.find(id);
                if (it == containers_.end()) co_return;
            }
            if (!options.follow || it->second.status != container_status::running) co_return;
            change c{*this, cancel};
            co_await c;
        }
    }

    // Suspends until notify() or a stop (then throws operation_cancelled).
    struct change {
        memory_engine& engine;
        std::stop_token stop;
        std::coroutine_handle<> waiting = {};
        struct on_stop {
            change* self;
            void operator()() const noexcept {
                auto& ws = self->engine.waiters_;
                ws.erase(std::remove(ws.begin(), ws.end(), self), ws.end());
                if (self->registering) {
                    self->stopped_while_registering = true;
                } else {
                    self->waiting.resume();
                }
            }
        };
        std::optional<std::stop_callback<on_stop>> callback = {};
        bool registering = false;
        bool stopped_while_registering = false;

        bool await_ready() const noexcept { return stop.stop_requested(); }
        bool await_suspend(std::coroutine_handle<> h) {
            waiting = h;
            engine.waiters_.push_back(this);
            registering = true;
            callback.emplace(stop, on_stop{this});
            registering = false;
            return !stopped_while_registering;
        }
        void await_resume() {
            callback.reset();
            if (stop.stop_requested()) throw operation_cancelled();
        }
    };

    void notify() {
        auto ws = std::exchange(waiters_, {});
        for (change* w : ws) w->waiting.resume();
    }

    std::string name_;
    std::map<std::string, container> containers_;
    std::size_t created_ = 0;
    std::vector<change*> waiters_;
};

}  // namespace registry::testing
