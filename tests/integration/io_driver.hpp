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
#include <doctest/doctest.h>

#include <chrono>
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

// An io_context the test's thread runs: until a condition holds, or until a
// task completes (its exception rethrown here). Destroyed, it lets what
// still runs on it end (stop the parts driven on it first).
struct io_loop {
    boost::asio::io_context io;

    template <typename Pred>
    bool until(Pred pred, ms timeout) { return run_io_until(io, pred, timeout); }
    void run_for(ms d) { run_io_for(io, d); }

    template <typename T>
    std::shared_ptr<outcome<T>> start(registry::task<T> t) {
        auto out = std::make_shared<outcome<T>>();
        run_into(std::move(t), out);
        return out;
    }

    template <typename T>
    T await(registry::task<T> t, ms timeout = ms(15'000)) {
        auto out = start(std::move(t));
        REQUIRE_MESSAGE(until([&] { return out->done; }, timeout), "the task did not complete in time");
        if (out->error) std::rethrow_exception(out->error);
        return std::move(*out->value);
    }

    void await(registry::task<void> t, ms timeout = ms(15'000)) {
        auto out = std::make_shared<outcome<bool>>();
        run_void(std::move(t), out);
        REQUIRE_MESSAGE(until([&] { return out->done; }, timeout), "the task did not complete in time");
        if (out->error) std::rethrow_exception(out->error);
    }

    ~io_loop() {
        io.restart();
        io.run_for(std::chrono::seconds(3));
    }
};

}  // namespace it
