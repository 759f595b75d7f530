// A store port for tests: keeps the state in a map, and lets a test hold
// commits (to observe what happens while a write is in flight), release them
// in order, or make the store fail.
#pragma once

#include <registry/ports/store.hpp>

#include <coroutine>
#include <cstddef>
#include <deque>
#include <map>
#include <string>

namespace registry::testing {

class memory_store final : public store {
public:
    task<std::uint64_t> load(std::string prefix, store_visitor each) override {
        for (auto it = data_.lower_bound(prefix); it != data_.end() && it->first.starts_with(prefix); ++it) {
            each(it->first, it->second);
        }
        co_return revision_;
    }

    task<void> commit(store_batch batch) override {
        if (failed_) throw store_error("memory_store: write failed");
        if (unreachable_) throw store_unreachable("memory_store: unreachable", std::move(batch));
        if (held_) {
            pending p{std::move(batch), {}};
            pending_.push_back(&p);
            co_await parked{p};
            if (failed_) throw store_error("memory_store: write failed");
            if (unreachable_) throw store_unreachable("memory_store: unreachable", std::move(p.batch));
            apply(p.batch);
        } else {
            apply(batch);
        }
    }

    // While held, commits queue up and suspend until release().
    void hold() noexcept { held_ = true; }
    void release() {
        held_ = false;
        while (!pending_.empty()) {
            pending* p = pending_.front();
            pending_.pop_front();
            p->waiting.resume();
        }
    }

    // From now on every commit (including held ones, on release) fails.
    void fail() noexcept { failed_ = true; }
    // While unreachable, commits (including held ones, on release) fail
    // with store_unreachable and change nothing; then they succeed again.
    void set_unreachable(bool unreachable) noexcept { unreachable_ = unreachable; }

    std::size_t commits() const noexcept { return commits_; }
    std::size_t pending_commits() const noexcept { return pending_.size(); }
    std::uint64_t revision() const noexcept { return revision_; }
    const std::map<std::string, std::string>& data() const noexcept { return data_; }

    // Seeds the store as if an earlier process had written it.
    void put(std::string key, std::string value) { data_[std::move(key)] = std::move(value); }
    void set_revision(std::uint64_t r) noexcept { revision_ = r; }

private:
    struct pending {
        store_batch batch;
        std::coroutine_handle<> waiting;
    };
    struct parked {
        pending& p;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) noexcept { p.waiting = h; }
        void await_resume() const noexcept {}
    };

    void apply(const store_batch& batch) {
        for (const auto& m : batch.mutations) {
            if (m.value) {
                data_[m.key] = *m.value;
            } else {
                data_.erase(m.key);
            }
        }
        if (batch.revision > revision_) revision_ = batch.revision;
        ++commits_;
    }

    std::map<std::string, std::string> data_;
    std::deque<pending*> pending_;
    std::uint64_t revision_ = 0;
    std::size_t commits_ = 0;
    bool held_ = false;
    bool failed_ = false;
    bool unreachable_ = false;
};

}  // namespace registry::testing
