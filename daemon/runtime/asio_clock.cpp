#include "runtime/asio_clock.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_timer.hpp>

#include <chrono>
#include <coroutine>
#include <memory>
#include <utility>

namespace registryd {

namespace {

namespace asio = boost::asio;

// Shared between the sleeping coroutine, the timer's completion handler and
// a (possibly posted) cancellation; whichever finishes last frees it.
struct sleep_state {
    explicit sleep_state(asio::io_context& ioc) : timer(ioc) {}
    asio::system_timer timer;
    std::coroutine_handle<> waiter;
    bool cancelled = false;  // set on the io thread only
    bool fired = false;
};

struct canceller {
    std::shared_ptr<sleep_state> state;
    asio::io_context* ioc;

    // Runs on whichever thread requests the stop. The state may only be
    // touched on the io thread: act directly there, post otherwise. The flag
    // covers a stop that lands before the wait has started.
    void operator()() const noexcept {
        auto cancel = [s = state] {
            s->cancelled = true;
            s->timer.cancel();
        };
        if (ioc->get_executor().running_in_this_thread()) {
            cancel();
        } else {
            asio::post(*ioc, std::move(cancel));
        }
    }
};

// GCC 12 destroys an aggregate-initialised awaiter temporary twice in
// `co_await awaiter{...}` (a double release of its members). So: a
// constructor, a named awaiter, and the stop_callback as a coroutine local.
struct timer_awaiter {
    explicit timer_awaiter(std::shared_ptr<sleep_state> s) noexcept : state(std::move(s)) {}
    std::shared_ptr<sleep_state> state;

    bool await_ready() const noexcept { return state->cancelled; }

    void await_suspend(std::coroutine_handle<> h) {
        state->waiter = h;
        // The handler runs on the io thread and resumes the sleeper there.
        state->timer.async_wait([s = state](const boost::system::error_code& ec) {
            s->fired = !ec && !s->cancelled;
            s->waiter.resume();
        });
    }

    bool await_resume() const noexcept { return state->fired; }
};

asio::system_timer::time_point to_timer_time(registry::time_point deadline) {
    using timer_tp = asio::system_timer::time_point;
    // Milliseconds reach much further than the timer's nanoseconds: clamp
    // instead of overflowing ("sleep forever" is time_point::max()).
    constexpr auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(timer_tp::duration::max()) -
                           std::chrono::hours(24);
    if (deadline.time_since_epoch() >= limit) return timer_tp::max();
    return timer_tp(std::chrono::duration_cast<timer_tp::duration>(deadline.time_since_epoch()));
}

}  // namespace

registry::time_point asio_clock::now() const {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

registry::task<bool> asio_clock::sleep_until(registry::time_point deadline, std::stop_token stop) {
    if (stop.stop_requested()) co_return false;
    // Even a deadline in the past goes through the timer, so that a loop of
    // sleeps always yields to the event loop (no starvation of I/O).
    auto state = std::make_shared<sleep_state>(ioc_);
    state->timer.expires_at(to_timer_time(deadline));
    // Runs inline if the stop is requested already (then the wait does not
    // start); from the io thread or posted to it otherwise.
    std::stop_callback<canceller> on_stop(stop, canceller{state, &ioc_});
    timer_awaiter wait(state);
    const bool fired = co_await wait;
    co_return fired;
}

}  // namespace registryd
