// Embedding the registry in an Asio program: the two adapters a user writes
// (a clock on an Asio timer, a store — here the testing memory store) and the
// registry's coroutines started from the program and resumed by its
// io_context, beside the program's own Asio I/O. registryd is the full-size
// version of this (daemon/); this is the smallest one.
//
// The program registers itself with a 1 s lease and renews it from its own
// timer loop, serves "who provides NAME?" on a loopback TCP port from the
// registry, asks itself once, then stops renewing and checks that the lease
// runs out in real time. Exit status 1 and a message on the first
// expectation that does not hold.
#include <registry/async_scope.hpp>
#include <registry/registry.hpp>
#include <registry/testing/memory_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_timer.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stop_token>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

void expect(bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "asio_embed: %s\n", what);
    std::exit(1);
}

// Adapter 1: the clock port on an Asio timer. One thread (the io_context's):
// a stop cancels the timer, whose handler then resumes the sleeper with false.
class asio_clock final : public registry::clock {
public:
    explicit asio_clock(asio::io_context& ioc) : ioc_(ioc) {}

    registry::time_point now() const override {
        return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    }

    registry::task<bool> sleep_until(registry::time_point deadline, std::stop_token stop = {}) override {
        if (stop.stop_requested()) co_return false;
        auto timer = std::make_shared<asio::system_timer>(ioc_, deadline);
        std::stop_callback on_stop(stop, [timer] { timer->cancel(); });
        wait_for w{timer};
        co_return co_await w;
    }

private:
    struct wait_for {
        std::shared_ptr<asio::system_timer> timer;
        bool fired = false;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) {
            timer->async_wait([this, h](boost::system::error_code ec) {
                fired = !ec;
                h.resume();
            });
        }
        bool await_resume() const noexcept { return fired; }
    };

    asio::io_context& ioc_;
};

registry::task<void> keep_alive(registry::registry& reg, asio_clock& clock, std::uint64_t lease, int times) {
    for (int i = 0; i < times; ++i) {
        bool slept = co_await clock.sleep_until(clock.now() + registry::milliseconds{400});
        expect(slept, "a timer was cancelled");
        auto renewed = co_await reg.keepalive(lease);
        expect(renewed.ok(), "keepalive failed");
    }
}

// The program's own Asio I/O, answering from the registry: one request
// ("NAME\n") per connection, answered "ADDRESS:PORT\n" or "none\n".
void serve_one(registry::registry& reg, tcp::acceptor& acceptor) {
    auto socket = std::make_shared<tcp::socket>(acceptor.get_executor());
    acceptor.async_accept(*socket, [&reg, socket](boost::system::error_code ec) {
        expect(!ec, "accept failed");
        auto line = std::make_shared<std::string>();
        asio::async_read_until(*socket, asio::dynamic_buffer(*line), '\n',
                               [&reg, socket, line](boost::system::error_code ec2, std::size_t n) {
            expect(!ec2, "reading the question failed");
            registry::service_filter f;
            f.name = line->substr(0, n - 1);
            auto found = reg.list(f);
            auto answer = std::make_shared<std::string>("none\n");
            if (!found.empty() && !found[0]->endpoints.empty()) {
                const auto& ep = found[0]->endpoints[0];
                *answer = ep.address + ":" + std::to_string(ep.port) + "\n";
            }
            asio::async_write(*socket, asio::buffer(*answer), [socket, answer](boost::system::error_code, std::size_t) {});
        });
    });
}

std::string ask(asio::io_context& ioc, tcp::endpoint at, std::string question) {
    tcp::socket s(ioc);
    s.connect(at);
    asio::write(s, asio::buffer(question + "\n"));
    std::string answer;
    // The server runs on the same io_context: drive it while waiting.
    asio::async_read_until(s, asio::dynamic_buffer(answer), '\n', [](boost::system::error_code, std::size_t) {});
    while (answer.find('\n') == std::string::npos) ioc.run_one();
    return answer.substr(0, answer.size() - 1);
}

}  // namespace

int main() {
    asio::io_context ioc;
    asio_clock clock(ioc);
    registry::testing::memory_store store;  // adapter 2: a real program writes through to its storage
    registry::registry reg(clock, store);
    registry::async_scope scope;
    std::stop_source stop;

    tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const auto port = acceptor.local_endpoint().port();

    std::uint64_t lease = 0;
    std::string instance;
    auto setup = [&]() -> registry::task<void> {
        auto opened = co_await reg.open();
        expect(opened.ok(), "open failed");
        registry::registration r;
        r.service.name = "asio-demo";
        r.service.endpoints.push_back({"tcp", "127.0.0.1", port, "tcp"});
        r.ttl = registry::seconds{1};
        auto grant = co_await reg.register_service(r);
        expect(grant.ok(), "register failed");
        lease = grant->lease_id;
        instance = grant->instance_id;
    };
    scope.spawn(setup());
    scope.spawn(reg.run(stop.get_token()));  // lease expiry, on the io_context's timers
    while (lease == 0) ioc.run_one();

    serve_one(reg, acceptor);
    const std::string answer = ask(ioc, acceptor.local_endpoint(), "asio-demo");
    std::printf("who provides asio-demo? %s\n", answer.c_str());
    expect(answer == "127.0.0.1:" + std::to_string(port), "the registry's answer over TCP is wrong");

    const auto started = std::chrono::steady_clock::now();
    scope.spawn(keep_alive(reg, clock, lease, 3));  // renewed for about 1.2 s, then not
    while (reg.find(instance) != nullptr) ioc.run_one();
    const auto lived = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    std::printf("the lease ran out %lld ms after the renewals began\n", static_cast<long long>(lived.count()));
    expect(lived >= std::chrono::milliseconds{2000}, "the lease ran out before its renewals allowed");

    stop.request_stop();
    while (scope.active() != 0) ioc.run_one();
    return 0;
}
