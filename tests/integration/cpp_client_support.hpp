// What the C++ client's integration tests share: running a coroutine body on
// an io_context (bounded), and waiting inside one.
#pragma once

#include "harness.hpp"

#include <registry/client/client.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <exception>
#include <functional>
#include <utility>

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

// The next event of `w` that is not a bookmark, within `timeout` (scaled).
inline boost::asio::awaitable<registry::client::event> next_event(registry::client::subscription& w,
                                                                  registry::client::client& c, ms timeout = ms(20000)) {
    for (;;) {
        boost::asio::steady_timer guard(c.get_executor(), scaled(timeout));
        bool timed_out = false;
        guard.async_wait([&](boost::system::error_code ec) {
            if (!ec) {
                timed_out = true;
                w.cancel();
            }
        });
        registry::client::result<registry::client::event> e = co_await w.next();
        guard.cancel();
        if (timed_out) throw failure("no event in time");
        if (!e) throw failure("the watch ended: " + e.err().message);
        if (e->type != "bookmark") co_return std::move(e).value();
    }
}

}  // namespace it::cpp_client
