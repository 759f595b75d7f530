// Hands events from a producer task (reading an engine stream) to a consumer
// generator, so that the consumer's stream ends inline when its stop is
// requested, however long the producer takes to notice its own cancellation
// (an engine read completes on the embedder's loop, later). The same promise
// registry::watch() makes, for per-request streams (log follows, pulls).
#pragma once

#include <registry/async_generator.hpp>
#include <registry/event.hpp>

#include <coroutine>
#include <deque>
#include <memory>
#include <stop_token>
#include <utility>

namespace registry::detail {

class event_relay : public std::enable_shared_from_this<event_relay> {
public:
    // Producer side.
    void push(event_ptr e) {
        if (closed_) return;
        queue_.push_back(std::move(e));
        wake();
    }
    void finish() {
        finished_ = true;
        wake();
    }
    bool closed() const noexcept { return closed_; }
    std::stop_token producer_token() const noexcept { return producer_stop_.get_token(); }
    void stop_producer() noexcept { producer_stop_.request_stop(); }

    // Consumer side: nothing more is wanted.
    void close() noexcept {
        closed_ = true;
        waiting_ = {};
        queue_.clear();
        producer_stop_.request_stop();
    }

    struct next {
        event_relay& r;
        bool await_ready() const noexcept { return r.closed_ || r.finished_ || !r.queue_.empty(); }
        void await_suspend(std::coroutine_handle<> h) noexcept { r.waiting_ = h; }
        void await_resume() const noexcept {}
    };

    // The next event; null once the stream is over.
    event_ptr take() {
        if (closed_ || queue_.empty()) return nullptr;
        event_ptr e = std::move(queue_.front());
        queue_.pop_front();
        return e;
    }

    void close_from_stop() noexcept {
        // Stopping the producer may finish it and the consumer inline, and
        // with them every other owner of this relay.
        const auto keep = shared_from_this();
        closed_ = true;
        producer_stop_.request_stop();
        wake();
    }

private:
    void wake() {
        if (waiting_) std::exchange(waiting_, {}).resume();
    }

    std::deque<event_ptr> queue_;
    std::coroutine_handle<> waiting_;
    std::stop_source producer_stop_;
    bool finished_ = false;
    bool closed_ = false;
};

using event_relay_ptr = std::shared_ptr<event_relay>;

// Owned by the consumer's frame from its creation (even if it never runs):
// destroying it tells the producer to stop.
struct relay_ref {
    event_relay_ptr relay;
    explicit relay_ref(event_relay_ptr r) noexcept : relay(std::move(r)) {}
    relay_ref(relay_ref&&) noexcept = default;
    relay_ref& operator=(relay_ref&&) = delete;
    ~relay_ref() {
        if (relay) relay->close();
    }
};

inline async_generator<event_ptr> relay_events(relay_ref ref, std::stop_token stop) {
    event_relay& r = *ref.relay;
    struct on_stop {
        event_relay* r;
        void operator()() const noexcept { r->close_from_stop(); }
    };
    std::stop_callback<on_stop> callback(stop, on_stop{&r});
    while (true) {
        event_relay::next n{r};
        co_await n;
        event_ptr e = r.take();
        if (!e) co_return;
        co_yield e;
    }
}

}  // namespace registry::detail
