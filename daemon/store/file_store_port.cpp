#include "store/file_store_port.hpp"

#include <registry/file_store.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace registryd {

namespace {

namespace asio = boost::asio;

// A commit suspended until its group is durable; lives in its coroutine frame.
struct waiter {
    std::coroutine_handle<> handle;
    std::exception_ptr error;
};

// Batches written by one append, and the commits to resume after it.
struct group {
    std::vector<registry::store_batch> batches;
    std::vector<waiter*> waiters;
    std::exception_ptr error;
    // Keeps io_context::run() from returning while the writer holds the group.
    asio::executor_work_guard<asio::io_context::executor_type> work;
};

}  // namespace

class file_store_port::writer : public std::enable_shared_from_this<writer> {
public:
    writer(asio::io_context& io, registry::file_store& fs) : io_(io), fs_(fs), fsyncs_(fs.stats().fsyncs) {}

    // Separate from the constructor: run() posts shared_from_this(), so the
    // writer must be owned by a shared_ptr before its thread exists.
    void start() { thread_ = std::thread([this] { run(); }); }

    void enqueue(registry::store_batch batch, waiter& w) {
        if (stopped_) throw registry::store_error("file_store_port: stopped");
        queued_batches_.push_back(std::move(batch));
        queued_waiters_.push_back(&w);
    }

    auto until_durable(waiter& w) {
        struct awaiter {
            writer& self;
            waiter& w;
            bool await_ready() const noexcept { return false; }
            void await_suspend(std::coroutine_handle<> h) {
                w.handle = h;
                // While completions resume commits, new ones only queue: the
                // completion then flushes them together.
                if (!self.flushing_ && !self.resuming_) self.start_flush();
            }
            void await_resume() const {
                if (w.error) std::rethrow_exception(w.error);
            }
        };
        return awaiter{*this, w};
    }

    std::uint64_t visit(std::string_view prefix, const registry::store_visitor& each) {
        std::lock_guard lock(fs_mutex_);
        return fs_.visit(prefix, each);
    }

    void stop() {
        if (stopped_) return;
        stopped_ = true;
        if (!queued_waiters_.empty()) start_flush();
        {
            std::lock_guard lock(mutex_);
            exiting_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }

    std::uint64_t fsyncs() const noexcept { return fsyncs_.load(std::memory_order_relaxed); }

private:
    void start_flush() {
        group g{std::move(queued_batches_), std::move(queued_waiters_), nullptr, asio::make_work_guard(io_)};
        queued_batches_.clear();
        queued_waiters_.clear();
        flushing_ = true;
        {
            std::lock_guard lock(mutex_);
            handed_.push_back(std::move(g));
        }
        wake_.notify_one();
    }

    // The writer thread: appends each handed group, posts its completion.
    void run() {
        std::unique_lock lock(mutex_);
        for (;;) {
            wake_.wait(lock, [this] { return exiting_ || !handed_.empty(); });
            if (handed_.empty()) return;
            group g = std::move(handed_.front());
            handed_.pop_front();
            lock.unlock();
            g.error = append(g.batches);
            asio::post(io_, [self = shared_from_this(), g = std::move(g)]() mutable { self->complete(std::move(g)); });
            lock.lock();
        }
    }

    std::exception_ptr append(const std::vector<registry::store_batch>& batches) {
        std::lock_guard lock(fs_mutex_);
        std::exception_ptr error;
        try {
            fs_.append(batches);
        } catch (const registry::store_error&) {
            error = std::current_exception();
        } catch (const std::exception& e) {
            error = std::make_exception_ptr(registry::store_error(e.what()));
        }
        fsyncs_.store(fs_.stats().fsyncs, std::memory_order_relaxed);
        return error;
    }

    // On the io thread.
    void complete(group g) {
        flushing_ = false;
        resuming_ = true;
        for (waiter* w : g.waiters) {
            w->error = g.error;
            w->handle.resume();
        }
        resuming_ = false;
        if (!queued_waiters_.empty() && !stopped_) start_flush();
    }

    asio::io_context& io_;
    registry::file_store& fs_;

    // io thread only.
    std::vector<registry::store_batch> queued_batches_;
    std::vector<waiter*> queued_waiters_;
    bool flushing_ = false;
    bool resuming_ = false;
    bool stopped_ = false;

    // Shared with the writer thread.
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<group> handed_;
    bool exiting_ = false;
    std::mutex fs_mutex_;  // load() may run while the writer appends
    std::atomic<std::uint64_t> fsyncs_;
    std::thread thread_;
};

file_store_port::file_store_port(asio::io_context& io, registry::file_store& fs)
    : writer_(std::make_shared<writer>(io, fs)) {
    writer_->start();
}

file_store_port::~file_store_port() { stop(); }

registry::task<std::uint64_t> file_store_port::load(std::string prefix, registry::store_visitor each) {
    co_return writer_->visit(prefix, each);
}

registry::task<void> file_store_port::commit(registry::store_batch batch) {
    waiter w;
    writer_->enqueue(std::move(batch), w);
    co_await writer_->until_durable(w);
}

void file_store_port::stop() { writer_->stop(); }

std::uint64_t file_store_port::fsyncs() const noexcept { return writer_->fsyncs(); }

}  // namespace registryd
