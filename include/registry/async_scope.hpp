// async_scope: starts tasks without awaiting them ("fire and forget"), keeps
// count of the ones still running, and lets someone await until all are done.
// The scope must be joined (or be idle) before it is destroyed.
#pragma once

#include <registry/frame_allocator.hpp>
#include <registry/task.hpp>

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>
#include <utility>

namespace registry {

class async_scope {
public:
    async_scope() = default;
    async_scope(const async_scope&) = delete;
    async_scope& operator=(const async_scope&) = delete;
    ~async_scope() { assert(active_ == 0 && "async_scope destroyed with tasks still running"); }

    // What to do with an exception escaping a spawned task. Default: terminate,
    // because a spawned task has nobody else to report to.
    void on_error(std::function<void(std::exception_ptr)> handler) { on_error_ = std::move(handler); }

    // Starts `t` now, on this thread; it runs until its first suspension
    // before spawn() returns.
    void spawn(task<void> t) {
        ++active_;
        run(std::move(t));
    }

    std::size_t active() const noexcept { return active_; }

    // Completes when no spawned task is running.
    auto join() noexcept {
        struct awaiter {
            async_scope& scope;
            bool await_ready() const noexcept { return scope.active_ == 0; }
            void await_suspend(std::coroutine_handle<> h) noexcept { scope.joiner_ = h; }
            void await_resume() const noexcept {}
        };
        return awaiter{*this};
    }

private:
    struct detached {
        struct promise_type {
            static void* operator new(std::size_t size) { return detail::frame_allocator::allocate(size); }
            static void operator delete(void* frame, std::size_t size) noexcept {
                detail::frame_allocator::deallocate(frame, size);
            }

            detached get_return_object() noexcept { return {}; }
            std::suspend_never initial_suspend() noexcept { return {}; }
            std::suspend_never final_suspend() noexcept { return {}; }
            void return_void() noexcept {}
            void unhandled_exception() noexcept { std::terminate(); }
        };
    };

    detached run(task<void> t) {
        try {
            co_await std::move(t);
        } catch (...) {
            if (on_error_) {
                on_error_(std::current_exception());
            } else {
                std::terminate();
            }
        }
        if (--active_ == 0 && joiner_) std::exchange(joiner_, {}).resume();
    }

    std::size_t active_ = 0;
    std::coroutine_handle<> joiner_;
    std::function<void(std::exception_ptr)> on_error_;
};

}  // namespace registry
