// Helpers shared by the coroutine-core tests: a live-instance counter, a
// manual event a coroutine can wait on, and an eager driver that owns a
// coroutine frame so a test can inspect or abandon it.
#pragma once

#include <coroutine>
#include <exception>
#include <utility>

namespace registry::test {

// Counts live instances, to check that coroutine frames destroy what they hold.
struct tracked {
    inline static int live = 0;
    tracked() { ++live; }
    tracked(const tracked&) { ++live; }
    ~tracked() { --live; }
};

// A coroutine waits on it until the test calls set(). Single-threaded.
class manual_event {
public:
    void set() {
        set_ = true;
        if (waiter_) std::exchange(waiter_, {}).resume();
    }
    void reset() { set_ = false; }
    bool has_waiter() const { return static_cast<bool>(waiter_); }

    auto operator co_await() noexcept {
        struct awaiter {
            manual_event& event;
            bool await_ready() const noexcept { return event.set_; }
            void await_suspend(std::coroutine_handle<> h) noexcept { event.waiter_ = h; }
            void await_resume() const noexcept {}
        };
        return awaiter{*this};
    }

private:
    bool set_ = false;
    std::coroutine_handle<> waiter_;
};

// Starts a coroutine eagerly and owns its frame: a test can look at it while
// it is suspended, and abandon it by destroying the driver.
class driver {
public:
    struct promise_type {
        driver get_return_object() noexcept { return driver{std::coroutine_handle<promise_type>::from_promise(*this)}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_always final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { error = std::current_exception(); }
        std::exception_ptr error;
    };

    explicit driver(std::coroutine_handle<promise_type> h) noexcept : handle_(h) {}
    driver(driver&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
    driver& operator=(driver&&) = delete;
    ~driver() {
        if (handle_) handle_.destroy();
    }

    bool done() const { return handle_.done(); }
    std::exception_ptr error() const { return handle_.promise().error; }

private:
    std::coroutine_handle<promise_type> handle_;
};

}  // namespace registry::test
