// A one-shot event for a lifecycle coroutine. set() never resumes the
// waiter inline (it may be called from deep inside a handler or a session's
// destructor): the resumption is posted to the io_context.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <coroutine>
#include <utility>

namespace registryd {

class oneshot {
public:
    explicit oneshot(boost::asio::io_context& ioc) : ioc_(ioc) {}

    void set() {
        if (set_) return;
        set_ = true;
        if (waiter_) boost::asio::post(ioc_, [h = std::exchange(waiter_, {})] { h.resume(); });
    }
    bool is_set() const noexcept { return set_; }

    auto wait() noexcept {
        struct awaiter {
            oneshot& ev;
            bool await_ready() const noexcept { return ev.set_; }
            void await_suspend(std::coroutine_handle<> h) noexcept { ev.waiter_ = h; }
            void await_resume() const noexcept {}
        };
        return awaiter{*this};
    }

private:
    boost::asio::io_context& ioc_;
    bool set_ = false;
    std::coroutine_handle<> waiter_;
};

}  // namespace registryd
