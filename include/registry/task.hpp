// A lazy, single-consumer coroutine task.
//
// A task<T> does nothing until it is awaited; awaiting it starts it and the
// awaiter is resumed when it completes. A task that completes while it is
// being started lets its awaiter continue without suspending; one that
// completes later transfers control back to it by symmetric transfer. Either
// way, loops awaiting many tasks run in constant stack space. There is no
// executor: a task runs on whatever thread resumes it.
#pragma once

#include <registry/broken_promise.hpp>
#include <registry/frame_allocator.hpp>

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

namespace registry {

template <typename T = void>
class task;

namespace detail {

class task_promise_base {
public:
    // Frames come from a per-thread cache (see frame_allocator.hpp).
    static void* operator new(std::size_t size) { return frame_allocator::allocate(size); }
    static void operator delete(void* frame, std::size_t size) noexcept { frame_allocator::deallocate(frame, size); }

    struct final_awaiter {
        bool await_ready() const noexcept { return false; }

        template <typename Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> done) noexcept {
            task_promise_base& promise = done.promise();
            // Second to get here (the awaiter has suspended): resume it. First
            // (still inside start()): start() returns false and the awaiter
            // goes on by itself.
            if (promise.ready_.exchange(true, std::memory_order_acq_rel)) return promise.continuation_;
            return std::noop_coroutine();
        }

        void await_resume() noexcept {}
    };

    std::suspend_always initial_suspend() noexcept { return {}; }
    final_awaiter final_suspend() noexcept { return {}; }

    // Runs the task (`self`) until it first suspends or completes. Returns
    // false if it has already completed, in which case `continuation` must
    // not suspend. GCC 12 does not turn symmetric transfer into a tail call
    // at -O0 or under ASan, so a loop of synchronously completing tasks would
    // otherwise grow the stack by a frame per iteration. The atomic settles a
    // race with the task completing on another thread meanwhile.
    bool start(std::coroutine_handle<> self, std::coroutine_handle<> continuation) noexcept {
        continuation_ = continuation;
        self.resume();
        return !ready_.exchange(true, std::memory_order_acq_rel);
    }

private:
    std::coroutine_handle<> continuation_;
    std::atomic<bool> ready_{false};
};

template <typename T>
class task_promise final : public task_promise_base {
public:
    task<T> get_return_object() noexcept;

    void unhandled_exception() noexcept { result_.template emplace<2>(std::current_exception()); }

    template <typename U>
        requires std::is_convertible_v<U&&, T>
    void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        result_.template emplace<1>(std::forward<U>(value));
    }

    T& result() & {
        rethrow_if_failed();
        return std::get<1>(result_);
    }

    T&& result() && {
        rethrow_if_failed();
        return std::move(std::get<1>(result_));
    }

private:
    void rethrow_if_failed() {
        if (result_.index() == 2) std::rethrow_exception(std::get<2>(result_));
    }

    std::variant<std::monostate, T, std::exception_ptr> result_;
};

template <>
class task_promise<void> final : public task_promise_base {
public:
    task<void> get_return_object() noexcept;

    void unhandled_exception() noexcept { exception_ = std::current_exception(); }
    void return_void() noexcept {}

    void result() {
        if (exception_) std::rethrow_exception(exception_);
    }

private:
    std::exception_ptr exception_;
};

template <typename T>
class task_promise<T&> final : public task_promise_base {
public:
    task<T&> get_return_object() noexcept;

    void unhandled_exception() noexcept { exception_ = std::current_exception(); }
    void return_value(T& value) noexcept { value_ = std::addressof(value); }

    T& result() {
        if (exception_) std::rethrow_exception(exception_);
        return *value_;
    }

private:
    T* value_ = nullptr;
    std::exception_ptr exception_;
};

}  // namespace detail

template <typename T>
class [[nodiscard]] task {
public:
    using promise_type = detail::task_promise<T>;
    using value_type = T;

    task() noexcept = default;
    explicit task(std::coroutine_handle<promise_type> handle) noexcept : handle_(handle) {}
    task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
    task& operator=(task&& other) noexcept {
        if (this != &other) {
            if (handle_) handle_.destroy();
            handle_ = std::exchange(other.handle_, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() {
        if (handle_) handle_.destroy();
    }

    // True once the coroutine has run to completion (or has none). Awaiting a
    // task with none throws broken_promise.
    bool is_ready() const noexcept { return !handle_ || handle_.done(); }

    auto operator co_await() & noexcept { return awaiter<false>{handle_}; }
    auto operator co_await() && noexcept { return awaiter<true>{handle_}; }

private:
    template <bool Move>
    struct awaiter {
        std::coroutine_handle<promise_type> handle;

        bool await_ready() const noexcept { return !handle || handle.done(); }

        bool await_suspend(std::coroutine_handle<> awaiting) noexcept {
            return handle.promise().start(handle, awaiting);
        }

        decltype(auto) await_resume() {
            if (!handle) throw broken_promise{};
            if constexpr (Move && !std::is_reference_v<T> && !std::is_void_v<T>) {
                return std::move(handle.promise()).result();
            } else {
                return handle.promise().result();
            }
        }
    };

    std::coroutine_handle<promise_type> handle_;
};

namespace detail {

template <typename T>
task<T> task_promise<T>::get_return_object() noexcept {
    return task<T>{std::coroutine_handle<task_promise>::from_promise(*this)};
}

inline task<void> task_promise<void>::get_return_object() noexcept {
    return task<void>{std::coroutine_handle<task_promise>::from_promise(*this)};
}

template <typename T>
task<T&> task_promise<T&>::get_return_object() noexcept {
    return task<T&>{std::coroutine_handle<task_promise>::from_promise(*this)};
}

}  // namespace detail

}  // namespace registry
