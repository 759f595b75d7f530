// Runs blocking work (unpacking an archive, a local script) on a thread of
// its own and resumes the awaiting coroutine on the io_context with the
// result. Each job gets a thread: they are few and short (bounded by the
// script timeouts). The destructor joins whatever is still running.
#pragma once

#include <registry/task.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <coroutine>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace registryd {

class blocking_runner {
public:
    explicit blocking_runner(boost::asio::io_context& ioc) : ioc_(ioc) {}
    ~blocking_runner() {
        for (auto& w : threads_) w.thread.join();
    }
    blocking_runner(const blocking_runner&) = delete;
    blocking_runner& operator=(const blocking_runner&) = delete;

    template <typename T>
    registry::task<T> run(std::function<T()> job) {
        auto st = std::make_shared<state<T>>();
        awaiter<T> a{*this, st, std::move(job)};  // a named awaiter (GCC 12)
        co_return co_await a;
    }

private:
    template <typename T>
    struct state {
        std::optional<T> value;
        std::exception_ptr error;
        std::coroutine_handle<> waiter;
    };

    template <typename T>
    struct awaiter {
        blocking_runner& self;
        std::shared_ptr<state<T>> st;
        std::function<T()> job;

        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) {
            st->waiter = h;
            self.reap();
            auto done = std::make_shared<std::atomic<bool>>(false);
            // The resumption is posted, so it runs on the io thread after
            // await_suspend has returned.
            std::thread t([st = st, job = std::move(job), done, &ioc = self.ioc_,
                           work = boost::asio::make_work_guard(self.ioc_)]() mutable {
                try {
                    st->value.emplace(job());
                } catch (...) {
                    st->error = std::current_exception();
                }
                boost::asio::post(ioc, [st] { st->waiter.resume(); });
                work.reset();
                done->store(true);
            });
            self.threads_.push_back({std::move(t), std::move(done)});
        }
        T await_resume() {
            if (st->error) std::rethrow_exception(st->error);
            return std::move(*st->value);
        }
    };

    struct worker {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };

    // Joins the threads whose job is over (they are at most returning).
    void reap() {
        for (auto it = threads_.begin(); it != threads_.end();) {
            if (it->done->load()) {
                it->thread.join();
                it = threads_.erase(it);
            } else {
                ++it;
            }
        }
    }

    boost::asio::io_context& ioc_;
    std::list<worker> threads_;
};

}  // namespace registryd
