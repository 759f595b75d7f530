// when_all: awaits several tasks at once. Awaiting the result starts every
// task, in order, on the awaiting thread, and completes when all of them have
// completed, wherever each one completes. If any threw, the first exception
// in argument order is rethrown, but only after all have finished.
#pragma once

#include <registry/task.hpp>

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace registry {

namespace detail {

template <typename T>
using when_all_value_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// Counts the tasks still running, plus one for the awaiting coroutine until it
// has suspended, so tasks completing while they are being started cannot
// resume it early.
class when_all_latch {
public:
    explicit when_all_latch(std::size_t tasks) noexcept : count_(tasks + 1) {}

    // For a task that has completed: what runs next.
    std::coroutine_handle<> arrive() noexcept {
        return count_.fetch_sub(1, std::memory_order_acq_rel) == 1 ? continuation_ : std::noop_coroutine();
    }

    auto operator co_await() noexcept {
        struct awaiter {
            when_all_latch& latch;

            bool await_ready() const noexcept { return false; }
            // Does not suspend if every task has already completed.
            bool await_suspend(std::coroutine_handle<> continuation) noexcept {
                latch.continuation_ = continuation;
                return latch.count_.fetch_sub(1, std::memory_order_acq_rel) > 1;
            }
            void await_resume() const noexcept {}
        };
        return awaiter{*this};
    }

private:
    std::atomic<std::size_t> count_;
    std::coroutine_handle<> continuation_;
};

// Awaits one task, keeps where its result is (in the task, which outlives it)
// or what it threw, and tells the latch.
template <typename T>
class [[nodiscard]] when_all_child {
public:
    class promise_type {
    public:
        struct arrive_awaiter {
            bool await_ready() const noexcept { return false; }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> child) noexcept {
                return child.promise().latch_->arrive();
            }
            void await_resume() const noexcept {}
        };

        when_all_child get_return_object() noexcept {
            return when_all_child{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() const noexcept { return {}; }
        arrive_awaiter final_suspend() noexcept { return {}; }

        // Yielding the result parks the child for good, so the reference stays valid.
        template <typename U>
        arrive_awaiter yield_value(U&& result) noexcept {
            result_ = std::addressof(result);
            return {};
        }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { exception_ = std::current_exception(); }

    private:
        friend when_all_child;

        when_all_latch* latch_ = nullptr;
        std::add_pointer_t<std::remove_reference_t<T>> result_ = nullptr;
        std::exception_ptr exception_;
    };

    explicit when_all_child(std::coroutine_handle<promise_type> handle) noexcept : handle_(handle) {}
    when_all_child(when_all_child&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
    when_all_child(const when_all_child&) = delete;
    when_all_child& operator=(const when_all_child&) = delete;
    when_all_child& operator=(when_all_child&&) = delete;
    ~when_all_child() {
        if (handle_) handle_.destroy();
    }

    void start(when_all_latch& latch) noexcept {
        handle_.promise().latch_ = &latch;
        handle_.resume();
    }

    // Once completed: the task's result, or rethrows what it threw.
    when_all_value_t<T> take() {
        promise_type& promise = handle_.promise();
        if (promise.exception_) std::rethrow_exception(promise.exception_);
        if constexpr (std::is_void_v<T>) {
            return {};
        } else {
            return std::forward<T>(*promise.result_);
        }
    }

private:
    std::coroutine_handle<promise_type> handle_;
};

template <typename T>
when_all_child<T> make_when_all_child(task<T>& t) {
    if constexpr (std::is_void_v<T>) {
        co_await std::move(t);
    } else {
        co_yield co_await std::move(t);
    }
}

}  // namespace detail

template <typename... Ts>
task<std::tuple<detail::when_all_value_t<Ts>...>> when_all(task<Ts>... tasks) {
    detail::when_all_latch latch{sizeof...(Ts)};
    // Every child exists before any starts, so a failed allocation leaves no
    // task running.
    std::tuple<detail::when_all_child<Ts>...> children{detail::make_when_all_child(tasks)...};
    std::apply([&](auto&... child) { (child.start(latch), ...); }, children);
    co_await latch;
    co_return std::apply(
        [](auto&... child) { return std::tuple<detail::when_all_value_t<Ts>...>{child.take()...}; }, children);
}

inline task<void> when_all(std::vector<task<void>> tasks) {
    detail::when_all_latch latch{tasks.size()};
    // Every child exists before any starts, so a failed allocation leaves no
    // task running.
    std::vector<detail::when_all_child<void>> children;
    children.reserve(tasks.size());
    for (task<void>& t : tasks) children.push_back(detail::make_when_all_child(t));
    for (detail::when_all_child<void>& child : children) child.start(latch);
    co_await latch;
    for (detail::when_all_child<void>& child : children) child.take();
}

}  // namespace registry
