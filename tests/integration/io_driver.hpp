// Driving a daemon part (the etcd store port, a writer_link) from a test,
// without its registryd: the test's thread runs an io_context until a
// condition holds, and library tasks are started without anybody awaiting
// them, their outcomes landing in a shared state (the test may give up on a
// task before the io_context resumes it).
#pragma once

#include "harness.hpp"
#include "runtime/detached_task.hpp"  // ::registryd::detached: started at once, awaited by nobody

#include <registry/task.hpp>

#include <boost/asio/io_context.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <thread>

namespace it {

template <typename T>
struct outcome {
    bool done = false;
    std::optional<T> value;
    std::exception_ptr error;
};

template <typename T>
::registryd::detached run_into(registry::task<T> t, std::shared_ptr<outcome<T>> out) {
    try {
        out->value.emplace(co_await std::move(t));
    } catch (...) {
        out->error = std::current_exception();
    }
    out->done = true;
}

inline ::registryd::detached run_void(registry::task<void> t, std::shared_ptr<outcome<bool>> out) {
    try {
        co_await std::move(t);
        out->value = true;
    } catch (...) {
        out->error = std::current_exception();
    }
    out->done = true;
}

// Runs `io` until pred() holds or `timeout` (scaled) passed; pred()'s last value.
template <typename Pred>
bool run_io_until(boost::asio::io_context& io, Pred pred, ms timeout) {
    const auto deadline = steady::now() + scaled(timeout);
    while (!pred() && steady::now() < deadline) {
        if (io.stopped()) io.restart();
        if (io.run_for(ms(20)) == 0) std::this_thread::sleep_for(ms(5));
    }
    return pred();
}

// Runs `io` for `d` whatever happens.
inline void run_io_for(boost::asio::io_context& io, ms d) {
    const auto deadline = steady::now() + d;
    while (steady::now() < deadline) {
        if (io.stopped()) io.restart();
        if (io.run_for(ms(20)) == 0) std::this_thread::sleep_for(ms(5));
    }
}

}  // namespace it
