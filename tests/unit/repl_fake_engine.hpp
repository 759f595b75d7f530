// An in-memory container engine for the REPL executor's tests: containers
// are records, and the test plays the program (write(), exit()). Everything
// completes inline on the test's thread; attach and wait suspend until the
// test writes or ends the program, or their stop token is requested.
#pragma once

#include <registry/cancellation.hpp>
#include <registry/ports/container_engine.hpp>

#include <algorithm>
#include <coroutine>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

namespace registry::test {

// One coroutine waits until notify(), or until its stop token is requested
// (then it throws operation_cancelled).
class wakeup {
public:
    void notify() {
        if (waiter_) std::exchange(waiter_, {}).resume();
    }

    struct awaiter {
        wakeup& w;
        std::stop_token stop;
        bool cancelled = false;
        struct on_stop {
            awaiter* self;
            void operator()() const noexcept {
                self->cancelled = true;
                if (self->w.waiter_) std::exchange(self->w.waiter_, {}).resume();
            }
        };
        std::optional<std::stop_callback<on_stop>> callback = {};

        bool await_ready() const noexcept { return stop.stop_requested(); }
        void await_suspend(std::coroutine_handle<> h) {
            w.waiter_ = h;
            callback.emplace(stop, on_stop{this});
        }
        void await_resume() {
            callback.reset();
            if (cancelled || stop.stop_requested()) throw operation_cancelled();
        }
    };

    awaiter wait(std::stop_token stop) { return awaiter{*this, std::move(stop)}; }

private:
    std::coroutine_handle<> waiter_;
};

class fake_repl_engine final : public container_engine {
public:
    struct container {
        std::string id;
        container_spec spec;
        std::vector<archive_file> files;
        container_status status = container_status::created;
        int exit_code = 0;
        bool attached = false;
        bool attached_before_upload = false;
        container_stats figures;  // what stats reports while it runs (the test sets them)
        std::size_t stats_calls = 0;
        std::deque<result<output_chunk>> pending;
        wakeup output;
        wakeup stopped;
    };
    using container_ptr = std::shared_ptr<container>;

    std::map<std::string, container_ptr> containers;  // not removed yet
    std::vector<std::string> log;                      // "create c1", "start c1", ...
    std::set<std::string> missing_images;
    std::size_t creates = 0;
    std::size_t removes = 0;

    // The engine as a new process finds it after the one using this object
    // died: the same containers, in fresh records (the dead process's
    // attachments and waits went with it, and nothing resumes its coroutines).
    std::unique_ptr<fake_repl_engine> survivor() const {
        auto e = std::make_unique<fake_repl_engine>();
        for (const auto& [id, c] : containers) {
            auto copy = std::make_shared<container>();
            copy->id = id;
            copy->spec = c->spec;
            copy->files = c->files;
            copy->status = c->status;
            copy->exit_code = c->exit_code;
            e->containers[id] = copy;
        }
        e->missing_images = missing_images;
        e->next_ = next_;
        return e;
    }

    container_ptr get(const std::string& id) const {
        auto it = containers.find(id);
        return it == containers.end() ? nullptr : it->second;
    }

    // The running containers that got their program, in creation order.
    std::vector<container_ptr> busy() const {
        std::vector<container_ptr> out;
        for (const auto& [id, c] : containers) {
            if (c->status == container_status::running && !c->files.empty()) out.push_back(c);
        }
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return number(a->id) < number(b->id); });
        return out;
    }

    void write(const container_ptr& c, output_stream s, std::string bytes) {
        c->pending.push_back(output_chunk{s, std::move(bytes)});
        c->output.notify();
    }

    void exit(const container_ptr& c, int code) {
        c->status = container_status::exited;
        c->exit_code = code;
        c->output.notify();
        c->stopped.notify();
    }

    // ---- container_engine

    task<result<void>> ping(std::stop_token) override { co_return result<void>{}; }
    task<result<engine_info>> version(std::stop_token) override { co_return engine_info{"fake", "1", "1.41", "linux", "amd64"}; }

    task<result<std::string>> create(container_spec spec, std::stop_token) override {
        if (missing_images.contains(spec.image)) co_return fail(errc::not_found, "no such image: " + spec.image);
        auto c = std::make_shared<container>();
        c->id = "c" + std::to_string(++next_);
        c->spec = std::move(spec);
        containers[c->id] = c;
        ++creates;
        log.push_back("create " + c->id);
        co_return c->id;
    }

    task<result<void>> start(std::string id, std::stop_token) override {
        auto c = get(id);
        if (!c) co_return fail(errc::not_found, "no container " + id);
        c->status = container_status::running;
        log.push_back("start " + id);
        co_return result<void>{};
    }

    task<result<void>> stop(std::string id, std::chrono::seconds, std::stop_token) override {
        auto c = get(id);
        if (!c) co_return fail(errc::not_found, "no container " + id);
        if (c->status == container_status::running) exit(c, 137);
        co_return result<void>{};
    }

    task<result<void>> remove(std::string id, bool force, std::stop_token) override {
        auto c = get(id);
        if (!c) co_return fail(errc::not_found, "no container " + id);
        if (c->status == container_status::running && !force) co_return fail(errc::conflict, "running");
        containers.erase(id);
        ++removes;
        log.push_back("remove " + id);
        if (c->status == container_status::running) exit(c, 137);
        co_return result<void>{};
    }

    task<result<container_info>> inspect(std::string id, std::stop_token) override {
        auto c = get(id);
        if (!c) co_return fail(errc::not_found, "no container " + id);
        container_info info;
        info.id = id;
        info.labels = c->spec.labels;
        co_return info;
    }

    task<result<container_stats>> stats(std::string id, std::stop_token) override {
        auto c = get(id);
        if (!c) co_return fail(errc::not_found, "no container " + id);
        ++c->stats_calls;
        if (c->status != container_status::running) co_return container_stats{};  // its cgroup is gone
        co_return c->figures;
    }

    task<result<std::vector<container_summary>>> list(label_selector labels, std::stop_token) override {
        std::vector<container_summary> out;
        for (const auto& [id, c] : containers) {
            bool match = true;
            for (const auto& t : labels.terms) {
                auto it = c->spec.labels.find(t.key);
                if (it == c->spec.labels.end() || (t.value && it->second != *t.value)) match = false;
            }
            if (match) out.push_back(container_summary{id, "", c->spec.image, c->spec.labels, c->status, "", {}});
        }
        co_return out;
    }

    task<result<int>> wait(std::string id, std::stop_token cancel) override {
        auto c = get(id);
        if (!c) co_return fail(errc::not_found, "no container " + id);
        if (c->status == container_status::running) {
            auto w = c->stopped.wait(cancel);  // named: GCC 12 and non-trivial temporaries
            co_await w;
        }
        co_return c->exit_code;
    }

    task<result<engine_stream<output_chunk>>> logs(std::string id, log_options, std::stop_token) override {
        co_return fail(errc::internal, "logs: not used by the executor " + id);
    }

    task<result<engine_stream<output_chunk>>> attach(std::string id, std::stop_token cancel) override {
        auto c = get(id);
        if (!c) co_return fail(errc::not_found, "no container " + id);
        c->attached = true;
        log.push_back("attach " + id);
        co_return stream(c, cancel);
    }

    task<result<void>> put_archive(std::string id, std::string directory, std::vector<archive_file> files,
                                   std::stop_token) override {
        auto c = get(id);
        if (!c) co_return fail(errc::not_found, "no container " + id);
        log.push_back("put_archive " + id + " " + directory);
        c->attached_before_upload = c->attached;
        c->files = std::move(files);
        co_return result<void>{};
    }

    task<result<engine_stream<pull_progress>>> pull_image(std::string reference, std::stop_token) override {
        co_return fail(errc::internal, "pull: not used by the executor " + reference);
    }

    static const archive_file* file(const container& c, const std::string& path) {
        for (const auto& f : c.files) {
            if (f.path == path) return &f;
        }
        return nullptr;
    }

private:
    static std::size_t number(const std::string& id) { return std::stoul(id.substr(id.find_first_of("0123456789"))); }

    static engine_stream<output_chunk> stream(container_ptr c, std::stop_token stop) {
        for (;;) {
            while (!c->pending.empty()) {
                result<output_chunk> r = std::move(c->pending.front());
                c->pending.pop_front();
                co_yield r;
            }
            if (c->status == container_status::exited) co_return;
            auto w = c->output.wait(stop);
            co_await w;
        }
    }

    std::size_t next_ = 0;
};

}  // namespace registry::test
