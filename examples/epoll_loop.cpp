// The library's handlers on an event loop that is not Asio: a plain epoll
// loop of a page, with real time. It implements the two ports the registry
// needs (a clock whose sleeps are the loop's timers, a store over the
// embedded file_store) and runs, on one thread:
//   - a service that registers with a 1 s lease, keeps it alive three times
//     and then goes quiet, so the lease runs out;
//   - a second service with a long lease;
//   - a subscription that prints every change and stops the loop once the
//     first service's lease has expired;
// then reopens the store in a fresh registry and checks what survived.
// SIGINT/SIGTERM stop the loop early (signalfd). Exit status 1 and a message
// on the first expectation that does not hold.
//
//   epoll_loop [DATA_DIR]     (default: a fresh temporary directory)
#include <registry/async_scope.hpp>
#include <registry/file_store.hpp>
#include <registry/registry.hpp>
#include <registry/sync_wait.hpp>

#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

namespace {

void expect(bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "epoll_loop: %s\n", what);
    std::exit(1);
}

registry::time_point wall_now() {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

// The event loop: timers and a signalfd, one thread. Coroutines are resumed
// only from run(), never from inside another callback.
class epoll_loop final : public registry::clock {
public:
    epoll_loop() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, nullptr);
        sigfd_ = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = sigfd_;
        expect(epfd_ >= 0 && sigfd_ >= 0 && epoll_ctl(epfd_, EPOLL_CTL_ADD, sigfd_, &ev) == 0, "epoll set-up failed");
    }
    ~epoll_loop() override {
        close(sigfd_);
        close(epfd_);
    }

    registry::time_point now() const override { return wall_now(); }

    registry::task<bool> sleep_until(registry::time_point deadline, std::stop_token stop = {}) override {
        if (deadline <= now()) co_return true;
        if (stop.stop_requested()) co_return false;
        timer t{*this, deadline};
        // A stop wakes the sleeper on the loop's next turn, with false.
        std::stop_callback on_stop(stop, [this, &t] { cancel(t); });
        co_return co_await t;
    }

    // Runs until `stop` is requested (by a coroutine or a signal) and nothing
    // is ready to resume.
    void run(std::stop_source& stop) {
        while (!stop.stop_requested() || !ready_.empty()) {
            while (!ready_.empty()) {
                auto h = ready_.front();
                ready_.pop_front();
                h.resume();
            }
            if (stop.stop_requested()) break;
            int timeout = -1;
            if (!timers_.empty()) {
                auto wait = timers_.begin()->first - now();
                timeout = static_cast<int>(std::max<std::int64_t>(0, wait.count()));
            }
            epoll_event ev{};
            int n = epoll_wait(epfd_, &ev, 1, timeout);
            if (n == 1 && ev.data.fd == sigfd_) {
                signalfd_siginfo info{};
                if (read(sigfd_, &info, sizeof info) == sizeof info) stop.request_stop();
            }
            auto t = now();
            while (!timers_.empty() && timers_.begin()->first <= t) {
                timer* due = timers_.begin()->second;
                timers_.erase(timers_.begin());
                due->pending = false;
                ready_.push_back(due->waiter);
            }
        }
    }

private:
    struct timer {
        epoll_loop& loop;
        registry::time_point deadline;
        std::coroutine_handle<> waiter{};
        bool pending = false;
        bool fired = true;

        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) {
            waiter = h;
            pending = true;
            loop.timers_.emplace(deadline, this);
        }
        bool await_resume() const noexcept { return fired; }
    };

    void cancel(timer& t) {
        if (!t.pending) return;
        for (auto it = timers_.lower_bound(t.deadline); it != timers_.end() && it->first == t.deadline; ++it) {
            if (it->second == &t) {
                timers_.erase(it);
                break;
            }
        }
        t.pending = false;
        t.fired = false;
        ready_.push_back(t.waiter);
    }

    int epfd_;
    int sigfd_;
    std::multimap<registry::time_point, timer*> timers_;
    std::deque<std::coroutine_handle<>> ready_;
};

// The store port over the embedded file store, synchronously: each commit is
// durable (one write, one fdatasync) before it completes, which trivially
// keeps the port's ordering contract.
class file_store_port final : public registry::store {
public:
    explicit file_store_port(registry::file_store& fs) : fs_(fs) {}
    registry::task<std::uint64_t> load(std::string prefix, registry::store_visitor each) override {
        co_return fs_.visit(prefix, each);
    }
    registry::task<void> commit(registry::store_batch batch) override {
        fs_.append(std::span<const registry::store_batch>(&batch, 1));
        co_return;
    }

private:
    registry::file_store& fs_;
};

registry::registration service(std::string name, std::uint16_t port, registry::seconds ttl) {
    registry::registration r;
    r.service.name = std::move(name);
    r.service.endpoints.push_back({"http", "127.0.0.1", port, "http"});
    r.ttl = ttl;
    return r;
}

// Registers with a 1 s lease, renews it three times, then stops renewing.
registry::task<void> short_lived(registry::registry& reg, epoll_loop& loop, std::string& instance) {
    auto grant = co_await reg.register_service(service("api", 8081, registry::seconds{1}));
    expect(grant.ok(), "registering api failed");
    instance = grant->instance_id;
    for (int i = 0; i < 3; ++i) {
        bool slept = co_await loop.sleep_until(loop.now() + registry::milliseconds{400});
        expect(slept, "a timer was cancelled");
        auto renewed = co_await reg.keepalive(grant->lease_id);
        expect(renewed.ok(), "keepalive failed");
        std::printf("keepalive: api's lease runs to +%lld ms\n",
                    static_cast<long long>((renewed->expires_at - loop.now()).count()));
    }
}

// Prints every change; stops the loop once api's lease has expired.
registry::task<void> subscriber(registry::registry& reg, std::stop_source& stop, std::vector<std::string>& seen) {
    registry::watch_options options;
    options.stop = stop.get_token();
    auto events = reg.watch(std::move(options));
    for (auto it = co_await events.begin(); it != events.end(); co_await ++it) {
        const auto& e = **it;
        if (e.type == registry::event_type::bookmark) continue;
        std::string line(registry::to_string(e.type));
        if (e.service) line += " " + e.service->name;
        std::printf("event %llu: %s\n", static_cast<unsigned long long>(e.revision), line.c_str());
        seen.push_back(line);
        if (line == "service_deregistered api") stop.request_stop();
    }
}

registry::task<void> serve(registry::registry& reg, epoll_loop& loop, std::stop_source& stop,
                           std::vector<std::string>& seen, std::string& api_instance) {
    auto opened = co_await reg.open();
    expect(opened.ok(), "open failed");
    registry::async_scope scope;
    scope.spawn(reg.run(stop.get_token()));
    scope.spawn(subscriber(reg, stop, seen));
    auto db = co_await reg.register_service(service("db", 5432, registry::seconds{3600}));
    expect(db.ok(), "registering db failed");
    co_await short_lived(reg, loop, api_instance);
    co_await scope.join();
}

registry::task<void> reopen(registry::registry& reg) {
    auto opened = co_await reg.open();
    expect(opened.ok(), "reopening failed");
}

}  // namespace

int main(int argc, char** argv) {
    std::filesystem::path dir;
    if (argc > 1) {
        dir = argv[1];
    } else {
        char tmpl[] = "/tmp/registry-epoll-XXXXXX";
        expect(mkdtemp(tmpl) != nullptr, "mkdtemp failed");
        dir = tmpl;
    }
    auto started = wall_now();
    std::vector<std::string> seen;
    std::string api_instance;
    {
        auto fs = registry::file_store::open(dir);
        expect(fs.ok(), "opening the file store failed");
        file_store_port port(**fs);
        epoll_loop loop;
        registry::registry reg(loop, port);
        std::stop_source stop;
        auto done = serve(reg, loop, stop, seen, api_instance);
        // A lazy task: start it, then let the loop drive everything it awaits.
        registry::async_scope root;
        root.spawn(std::move(done));
        loop.run(stop);
        expect(root.active() == 0, "the loop stopped with work in flight (a signal?)");
    }
    auto elapsed = wall_now() - started;
    std::printf("api's lease ran out after %lld ms of real time\n", static_cast<long long>(elapsed.count()));
    const std::vector<std::string> want{"registry_loaded", "service_registered db", "service_registered api",
                                        "lease_expired api", "service_deregistered api"};
    expect(seen == want, "the events are not: registry_loaded, db and api registered, api's lease expired");
    // Three renewals 400 ms apart, then a 1 s lease: at least 2.2 s.
    expect(elapsed >= registry::milliseconds{2200}, "the lease expired before its real-time deadline");

    // What the file store kept: db, not api.
    auto fs = registry::file_store::open(dir);
    expect(fs.ok(), "reopening the file store failed");
    file_store_port port(**fs);
    epoll_loop loop;
    registry::registry reg(loop, port);
    registry::sync_wait(reopen(reg));
    registry::service_filter all;
    auto left = reg.list(all);
    expect(left.size() == 1 && left[0]->name == "db", "after reopening, the store does not hold exactly db");
    expect(reg.find(api_instance) == nullptr, "after reopening, api is back");
    std::printf("reopened %s: db is there, api is gone\n", dir.c_str());
    if (argc <= 1) std::filesystem::remove_all(dir);
    return 0;
}
