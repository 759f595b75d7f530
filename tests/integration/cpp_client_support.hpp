// What the C++ client's integration tests share: running a coroutine body on
// an io_context (bounded), and waiting inside one.
#pragma once

#include "harness.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <exception>
#include <functional>

namespace it::cpp_client {

// Runs `body` on `io` until it finishes (bounded, scaled), then lets the
// client's background work wind down; rethrows what the body threw.
inline void run(boost::asio::io_context& io, std::function<boost::asio::awaitable<void>()> body, ms timeout = ms(60000)) {
    bool finished = false;
    std::exception_ptr failure;
    boost::asio::co_spawn(io, body(), [&](std::exception_ptr e) {
        failure = e;
        finished = true;
    });
    const auto deadline = steady::now() + scaled(timeout);
    while (!finished && steady::now() < deadline) io.run_one_for(ms(100));
    REQUIRE_MESSAGE(finished, "the client test did not finish in time");
    if (failure) std::rethrow_exception(failure);
}

inline boost::asio::awaitable<void> sleep(ms d) {
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, d);
    co_await t.async_wait(boost::asio::use_awaitable);
}

// Polls `ok` every 50 ms until it holds, up to `timeout` (scaled).
inline boost::asio::awaitable<bool> eventually(std::function<bool()> ok, ms timeout) {
    const auto deadline = steady::now() + scaled(timeout);
    while (!ok()) {
        if (steady::now() >= deadline) co_return false;
        co_await sleep(ms(50));
    }
    co_return true;
}

}  // namespace it::cpp_client
