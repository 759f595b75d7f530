// A scheduler port for tests: post() only queues, and the queued coroutines
// run, in the order they were posted, when the test calls run_one() or run().
// Nothing runs on another thread.
#pragma once

#include <registry/ports/scheduler.hpp>

#include <coroutine>
#include <cstddef>
#include <deque>

namespace registry::testing {

class manual_scheduler final : public scheduler {
public:
    void post(std::coroutine_handle<> h) override { ready_.push_back(h); }

    // Resumes the coroutine posted first; false when none is waiting.
    bool run_one() {
        if (ready_.empty()) return false;
        std::coroutine_handle<> h = ready_.front();
        ready_.pop_front();
        ++running_;
        h.resume();
        --running_;
        return true;
    }

    // Runs until nothing is waiting, including what the resumed coroutines
    // post meanwhile; returns how many were resumed.
    std::size_t run() {
        std::size_t n = 0;
        while (run_one()) ++n;
        return n;
    }

    std::size_t pending() const noexcept { return ready_.size(); }

    // True while a coroutine it resumed is running: code that checks it runs
    // "on" this scheduler.
    bool running() const noexcept { return running_ > 0; }

private:
    std::deque<std::coroutine_handle<>> ready_;
    int running_ = 0;
};

}  // namespace registry::testing
