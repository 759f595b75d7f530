// A condition for coroutines on one executor: wait_until() returns when
// notify_all() is called or at the deadline, whichever comes first; the
// waiter then checks what it waits for.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <vector>

namespace registry::client::detail {

namespace asio = boost::asio;

class notifier {
public:
    void notify_all() {
        for (asio::steady_timer* t : waiting_) t->cancel();
        waiting_.clear();
    }

    asio::awaitable<void> wait_until(asio::steady_timer::time_point deadline) {
        asio::steady_timer t(co_await asio::this_coro::executor, deadline);
        waiting_.push_back(&t);
        // Unlisted however the wait ends, the coroutine's destruction included.
        struct unlist {
            std::vector<asio::steady_timer*>& list;
            asio::steady_timer* t;
            ~unlist() { std::erase(list, t); }
        } guard{waiting_, &t};
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }

private:
    std::vector<asio::steady_timer*> waiting_;
};

}  // namespace registry::client::detail
