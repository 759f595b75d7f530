// sync_wait: runs a task to completion, blocking the calling thread until it
// completes (possibly resumed from another thread), and returns its result or
// rethrows its exception. For main() and tests; never from inside a task.
#pragma once

#include <registry/task.hpp>

#include <condition_variable>
#include <coroutine>
#include <exception>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

namespace registry {

namespace detail {

// The waiter destroys the signal as soon as it sees it set, so set() must not
// touch it after that. A std::atomic notified after the store would be (the
// waiter can wake between the two); notifying under the lock is not.
struct sync_wait_signal {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    void set() noexcept {
        std::lock_guard lock(mutex);
        done = true;
        cv.notify_one();
    }
    void wait() noexcept {
        std::unique_lock lock(mutex);
        cv.wait(lock, [this] { return done; });
    }
};

struct sync_wait_runner {
    struct promise_type {
        sync_wait_runner get_return_object() noexcept {
            return sync_wait_runner{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        auto final_suspend() noexcept {
            struct notify {
                bool await_ready() const noexcept { return false; }
                void await_suspend(std::coroutine_handle<promise_type> h) noexcept { h.promise().signal->set(); }
                void await_resume() const noexcept {}
            };
            return notify{};
        }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { exception = std::current_exception(); }

        sync_wait_signal* signal = nullptr;
        std::exception_ptr exception;
    };

    explicit sync_wait_runner(std::coroutine_handle<promise_type> h) noexcept : handle(h) {}
    sync_wait_runner(sync_wait_runner&& o) noexcept : handle(std::exchange(o.handle, {})) {}
    ~sync_wait_runner() {
        if (handle) handle.destroy();
    }

    void run_and_wait() {
        sync_wait_signal signal;
        handle.promise().signal = &signal;
        handle.resume();
        signal.wait();
        if (handle.promise().exception) std::rethrow_exception(handle.promise().exception);
    }

    std::coroutine_handle<promise_type> handle;
};

}  // namespace detail

template <typename T>
T sync_wait(task<T>&& t) {
    if constexpr (std::is_void_v<T>) {
        auto runner = [](task<void>& inner) -> detail::sync_wait_runner { co_await std::move(inner); }(t);
        runner.run_and_wait();
    } else {
        std::optional<T> out;
        auto runner = [](task<T>& inner, std::optional<T>& slot) -> detail::sync_wait_runner {
            slot.emplace(co_await std::move(inner));
        }(t, out);
        runner.run_and_wait();
        return std::move(*out);
    }
}

}  // namespace registry
