// A lazy coroutine producing a sequence of values with co_yield, consumed
// asynchronously:
//
//     for (auto it = co_await gen.begin(); it != gen.end(); co_await ++it) use(*it);
//
// (Inside a template, GCC 12 rejects co_await in a for-increment; write the
// loop as a while loop there.)
//
// The producer runs only while the consumer waits for the next value, and may
// co_await anything between yields. A yielded value stays where the producer
// put it (the generator keeps a pointer) until the consumer asks for the next
// one. An exception escaping the producer is rethrown from the begin() or ++
// that was waiting. Destroying the generator destroys the producer wherever it
// is suspended, running its locals' destructors.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <type_traits>
#include <utility>

namespace registry {

template <typename T>
class async_generator;

namespace detail {

template <typename T>
class async_generator_promise {
public:
    using value_type = std::remove_reference_t<T>;

    // Hands control back to the consumer at a co_yield or at the end.
    struct handoff {
        bool await_ready() const noexcept { return false; }

        std::coroutine_handle<> await_suspend(std::coroutine_handle<async_generator_promise> producer) noexcept {
            async_generator_promise& promise = producer.promise();
            // Second to get here (the consumer has suspended): resume it. First
            // (still inside advance()): advance() returns false and the
            // consumer goes on by itself.
            if (promise.ready_.exchange(true, std::memory_order_acq_rel)) return promise.consumer_;
            return std::noop_coroutine();
        }

        void await_resume() noexcept {}
    };

    async_generator<T> get_return_object() noexcept;

    std::suspend_always initial_suspend() const noexcept { return {}; }
    handoff final_suspend() noexcept { return {}; }

    handoff yield_value(value_type& value) noexcept {
        value_ = std::addressof(value);
        return {};
    }
    // The temporary lives until the producer resumes, past the consumer's use.
    handoff yield_value(value_type&& value) noexcept {
        value_ = std::addressof(value);
        return {};
    }

    void unhandled_exception() noexcept { exception_ = std::current_exception(); }
    void return_void() noexcept {}

    // Runs the producer (`self`) until it yields, finishes or suspends
    // elsewhere. Returns false if it has already yielded or finished, in which
    // case `consumer` must not suspend: GCC 12 does not make symmetric
    // transfer a tail call at -O0 or under ASan, so a synchronous producer
    // would otherwise grow the stack by a frame per value. The atomic settles
    // a race with the producer being resumed on another thread meanwhile.
    bool advance(std::coroutine_handle<> self, std::coroutine_handle<> consumer) noexcept {
        consumer_ = consumer;
        ready_.store(false, std::memory_order_relaxed);  // the producer is suspended: nobody else reads it
        self.resume();
        return !ready_.exchange(true, std::memory_order_acq_rel);
    }

    void rethrow_if_failed() const {
        if (exception_) std::rethrow_exception(exception_);
    }

    value_type& value() const noexcept { return *value_; }

private:
    value_type* value_ = nullptr;
    std::exception_ptr exception_;
    std::coroutine_handle<> consumer_;
    std::atomic<bool> ready_{false};
};

template <typename T>
class async_generator_iterator {
    using handle_type = std::coroutine_handle<async_generator_promise<T>>;

public:
    using iterator_category = std::input_iterator_tag;
    using difference_type = std::ptrdiff_t;
    using value_type = std::remove_cvref_t<T>;
    using reference = std::remove_reference_t<T>&;
    using pointer = std::remove_reference_t<T>*;

    async_generator_iterator() noexcept = default;  // end()
    explicit async_generator_iterator(handle_type producer) noexcept : producer_(producer) {}

    // Resumes the producer; completes with *this, which equals end() once the
    // producer has finished, or rethrows what the producer threw.
    auto operator++() noexcept {
        struct awaiter {
            async_generator_iterator& it;

            bool await_ready() const noexcept { return false; }
            bool await_suspend(std::coroutine_handle<> consumer) noexcept {
                return it.producer_.promise().advance(it.producer_, consumer);
            }
            async_generator_iterator& await_resume() {
                if (it.producer_.done()) {
                    auto& promise = std::exchange(it.producer_, {}).promise();
                    promise.rethrow_if_failed();
                }
                return it;
            }
        };
        return awaiter{*this};
    }

    reference operator*() const noexcept { return producer_.promise().value(); }

    friend bool operator==(const async_generator_iterator&, const async_generator_iterator&) noexcept = default;

private:
    handle_type producer_;
};

}  // namespace detail

template <typename T>
class [[nodiscard]] async_generator {
public:
    using promise_type = detail::async_generator_promise<T>;
    using iterator = detail::async_generator_iterator<T>;

    async_generator() noexcept = default;
    explicit async_generator(std::coroutine_handle<promise_type> producer) noexcept : producer_(producer) {}
    async_generator(async_generator&& other) noexcept : producer_(std::exchange(other.producer_, {})) {}
    async_generator& operator=(async_generator&& other) noexcept {
        if (this != &other) {
            if (producer_) producer_.destroy();
            producer_ = std::exchange(other.producer_, {});
        }
        return *this;
    }
    async_generator(const async_generator&) = delete;
    async_generator& operator=(const async_generator&) = delete;
    ~async_generator() {
        if (producer_) producer_.destroy();
    }

    // Starts the producer; completes with an iterator to the first value, or
    // end() if there is none, or rethrows what the producer threw.
    auto begin() noexcept {
        struct awaiter {
            std::coroutine_handle<promise_type> producer;

            bool await_ready() const noexcept { return !producer || producer.done(); }
            bool await_suspend(std::coroutine_handle<> consumer) noexcept {
                return producer.promise().advance(producer, consumer);
            }
            iterator await_resume() {
                if (!producer) return iterator{};
                if (producer.done()) {
                    producer.promise().rethrow_if_failed();
                    return iterator{};
                }
                return iterator{producer};
            }
        };
        return awaiter{producer_};
    }

    iterator end() const noexcept { return iterator{}; }

private:
    std::coroutine_handle<promise_type> producer_;
};

namespace detail {

template <typename T>
async_generator<T> async_generator_promise<T>::get_return_object() noexcept {
    return async_generator<T>{std::coroutine_handle<async_generator_promise>::from_promise(*this)};
}

}  // namespace detail

}  // namespace registry
