// Runs a task to its end without anybody awaiting it, keeping `keep` (the
// object whose coroutine it is) alive until then: async_scope would touch
// itself after the task released the object's last reference.
#pragma once

#include <registry/task.hpp>

#include <coroutine>
#include <memory>
#include <utility>

namespace registryd {

struct detached {
    struct promise_type {
        detached get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept {}
    };
};

// The task catches what it can report; what escapes (operation_cancelled,
// at stop) ends it quietly.
template <typename Keep>
detached run_detached([[maybe_unused]] std::shared_ptr<Keep> keep, registry::task<void> t) {
    try {
        co_await std::move(t);
    } catch (...) {
    }
}

}  // namespace registryd
