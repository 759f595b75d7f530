// A clock port for tests: time moves only when the test says so, and every
// sleeper whose deadline is reached is resumed inline, in deadline order,
// with now() equal to its deadline. Nothing sleeps for real.
#pragma once

#include <registry/ports/clock.hpp>

#include <coroutine>
#include <iterator>
#include <map>
#include <optional>
#include <stop_token>

namespace registry::testing {

class fake_clock final : public clock {
public:
    explicit fake_clock(time_point start = time_point{milliseconds{1'700'000'000'000}}) : now_(start) {}

    time_point now() const override { return now_; }

    task<bool> sleep_until(time_point deadline, std::stop_token stop = {}) override {
        if (deadline <= now_) co_return true;
        if (stop.stop_requested()) co_return false;
        // A named awaiter: GCC 12 destroys a non-trivial temporary inside a
        // co_await expression twice.
        sleeper s{*this, deadline, &stop, {}, {}, {}};
        co_return co_await s;
    }

    // Moves time forward by `d`, waking sleepers on the way.
    void advance(milliseconds d) { advance_to(now_ + d); }

    void advance_to(time_point target) {
        while (!sleepers_.empty() && sleepers_.begin()->first <= target) {
            auto it = sleepers_.begin();
            now_ = it->first;
            sleeper* s = it->second;
            sleepers_.erase(it);
            s->wake(true);
        }
        if (target > now_) now_ = target;
    }

    std::size_t sleepers() const noexcept { return sleepers_.size(); }

private:
    struct sleeper;
    using queue = std::multimap<time_point, sleeper*>;

    struct sleeper {
        fake_clock& clk;
        time_point deadline;
        const std::stop_token* stop;
        std::coroutine_handle<> waiting;
        queue::iterator pos;
        bool fired = false;

        struct on_stop {
            sleeper* self;
            void operator()() const noexcept {
                self->clk.sleepers_.erase(self->pos);
                self->wake(false);
            }
        };
        std::optional<std::stop_callback<on_stop>> callback = {};

        bool await_ready() const noexcept { return false; }
        bool await_suspend(std::coroutine_handle<> h) {
            waiting = h;
            pos = clk.sleepers_.emplace(deadline, this);
            // stop_callback runs inline if the stop was already requested;
            // wake() must not resume us while we are still suspending.
            registering = true;
            callback.emplace(*stop, on_stop{this});
            registering = false;
            return !woken_while_registering;
        }
        bool await_resume() noexcept {
            callback.reset();
            return fired;
        }

        void wake(bool deadline_reached) {
            fired = deadline_reached;
            if (registering) {
                woken_while_registering = true;
                return;
            }
            waiting.resume();
        }

        bool registering = false;
        bool woken_while_registering = false;
    };

    time_point now_;
    queue sleepers_;
};

}  // namespace registry::testing
