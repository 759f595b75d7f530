// The scheduler port: an executor a coroutine can hop onto.
//
//     co_await sched.schedule();   // from here on, running on `sched`
//
// suspends the awaiting coroutine and hands it to the embedder, who resumes it
// on the scheduler's executor (an event loop, a strand). A task has no
// executor of its own (task.hpp): it runs wherever it is resumed, so this is
// how a handler's continuation moves from one event loop to another once
// registryd runs several. The library never spawns a thread or owns a loop:
// the embedder's post() decides where the coroutine runs next (in tests,
// testing::manual_scheduler, when the test says so).
#pragma once

#include <coroutine>

namespace registry {

class scheduler {
public:
    virtual ~scheduler() = default;

    // Resumes `h` exactly once on this scheduler's executor, later or before
    // returning. If it cannot (a loop shutting down), it throws instead and
    // must not resume `h`: the awaiting coroutine then continues where it is,
    // with that exception thrown from its co_await.
    virtual void post(std::coroutine_handle<> h) = 0;

    class schedule_operation {
    public:
        explicit schedule_operation(scheduler& s) noexcept : scheduler_(s) {}

        bool await_ready() const noexcept { return false; }
        // Touches nothing after post(): the coroutine may already be running
        // on the other executor, and this awaiter lives in its frame.
        void await_suspend(std::coroutine_handle<> awaiting) { scheduler_.post(awaiting); }
        void await_resume() const noexcept {}

    private:
        scheduler& scheduler_;
    };

    // An awaitable that resumes its awaiter on this scheduler. Trivially
    // destructible, so the GCC 12 double destruction of temporary awaiters
    // (registry.hpp) cannot touch it.
    [[nodiscard]] schedule_operation schedule() noexcept { return schedule_operation{*this}; }
};

}  // namespace registry
