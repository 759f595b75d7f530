// registry::client in a service (README, "A C++ client"): registers itself
// with registryd, finds its own endpoint, deregisters. The lease is renewed
// in the background of the io_context for as long as the registration runs.
// Usage: register_service ws://HOST:PORT/ ; exits non-zero when a step fails.
#include <registry/client/client.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

namespace asio = boost::asio;

int main(int argc, char** argv) {
    asio::io_context io;
    registry::client::client registry(io.get_executor(), {.url = argc > 1 ? argv[1] : "ws://127.0.0.1:8080/"});
    int status = 1;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        registry::service_instance me;
        me.name = "hello";
        me.endpoints.push_back({"http", "127.0.0.1", 8000, "http"});
        auto reg = co_await registry.register_service(me);  // a 30 s lease, renewed every 10 s
        if (!reg) {
            std::cerr << "register: " << reg.err().message << '\n';
            co_return;
        }
        registry::client::endpoint_filter hello{.service = "hello"};
        auto found = co_await registry.list_endpoints(hello);
        if (found && found->items.size() == 1 && found->items[0].instance_id == reg->instance_id()) {
            std::cout << "registered " << reg->instance_id() << " (lease " << reg->lease_id() << ") at "
                      << found->items[0].address << ':' << found->items[0].port << '\n';
            status = (co_await reg->deregister()).ok() ? 0 : 1;
        }
        registry.close();  // io.run() returns once the client's background work has ended
    }, asio::detached);
    io.run();
    return status;
}
