// registry::client: a C++ service's connection to registryd over its
// WebSocket protocol (docs/protocol.md), on Boost.Asio.
//
//   asio::io_context io;
//   registry::client::client c(io.get_executor(), {.url = "ws://127.0.0.1:7000/"});
//   asio::co_spawn(io, [&]() -> asio::awaitable<void> {
//       registry::service_instance api;
//       api.name = "api";
//       api.endpoints.push_back({"http", "127.0.0.1", 8080, "http"});
//       auto reg = co_await c.register_service(api, {.ttl = std::chrono::seconds(30)});
//       if (!reg) std::cerr << reg.err().message << '\n';  // or reg.value(), which throws
//       registry::client::endpoint_filter of_api{.service = "api"};
//       auto eps = co_await c.list_endpoints(of_api);
//   }, asio::detached);
//   io.run();
//
// (GCC 12 destroys a braced temporary with strings inside a co_await's
// operand twice: pass endpoint_filter and watch_options as named variables,
// as above.)
//
// - No threads of its own: everything runs on the executor it is given (the
//   user's io_context). Not thread-safe: use it from that executor (a strand
//   when the io_context runs on several threads).
// - Every operation takes a completion token and completes with one
//   result<T> (error.hpp): a value, or an error {code, message} with the
//   protocol's code and registryd's message. The default token is
//   asio::use_awaitable (`co_await c.get_service("api-1")`); a callback
//   `[](registry::client::result<T> r) {...}` or any other token works too.
// - The client connects at once and reconnects by itself (backoff with
//   jitter). A request made while it is disconnected waits for the
//   connection up to options::request_timeout; a request in flight when the
//   connection drops fails with connection_lost (it may have been done).
// - A 401 at the upgrade (a missing or wrong bearer token) is
//   errc::unauthorized: connect() returns it; requests that wait for a
//   connection fail with not_connected and that message.
// - register_service() keeps the lease alive in the background (keepalive
//   every third of the TTL by default) until the registration is
//   deregistered or stopped; after every reconnect it re-registers (with its
//   lease, renewing it; when the lease is gone, e.g. it expired while
//   registryd was down, under a new lease, same instance id).
// - watch() subscribes; after a reconnect it re-subscribes from the last
//   revision it delivered, so events are delivered once and in order. When
//   registryd can no longer replay that far back, the watch delivers
//   resync_required and then a registry_loaded snapshot: rebuild from it.
// - Several registryd on one etcd (docs/protocol.md, "Several registryd"):
//   give options::urls all of them. A failed connect or a lost connection
//   goes on to the next URL, round robin; the reconnect backoff comes once
//   per round of URLs, not per URL. A request answered not_writer (a
//   standby: nothing was done) moves the connection to the next URL and is
//   sent again there, until a registryd takes it or every URL had its turn
//   (one round; then it completes with not_writer: during a takeover there
//   is no writer for a few seconds). Before leaving, the client waits (at
//   most a second) for the answers to the other requests in flight there:
//   writes sent at the same time are answered not_writer too and move along;
//   what is still unanswered then fails with connection_lost. Requests made
//   meanwhile wait for the next connection. Reads and watches are served
//   anywhere and do not move; once on the writer the client stays there.
//   Moving is a reconnect like any other: watches resume with from_revision
//   (every registryd sends the writer's revisions), registrations are
//   renewed there; a re-registration answered not_writer by every URL is
//   tried again after the reconnect backoff. options::on_moved says when a
//   connection opens on another URL than the previous one, and why.
#pragma once

#include <registry/client/error.hpp>
#include <registry/client/types.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

namespace registry::client {

namespace asio = boost::asio;

class client;

namespace detail {

class client_impl;
struct registration_state;
struct subscription_state;

error error_from(std::exception_ptr e);

// Runs `op` on `ex` and completes `token` with its result<T>.
template <typename T, typename Token>
auto launch(asio::any_io_executor ex, asio::awaitable<result<T>> op, Token&& token) {
    return asio::async_initiate<Token, void(result<T>)>(
        [ex](auto handler, asio::awaitable<result<T>> work) {
            auto handler_ex = asio::get_associated_executor(handler, ex);
            asio::co_spawn(ex, std::move(work),
                           asio::bind_executor(handler_ex, [h = std::move(handler)](std::exception_ptr e, result<T> r) mutable {
                               if (e) r = error_from(e);  // never expected: the operations return their errors
                               std::move(h)(std::move(r));
                           }));
        },
        token, std::move(op));
}

asio::any_io_executor executor_of(const registration_state& s);
asio::any_io_executor executor_of(const subscription_state& s);
asio::awaitable<result<done>> deregister(std::shared_ptr<registration_state> s);
asio::awaitable<result<event>> next_event(std::shared_ptr<subscription_state> s);

}  // namespace detail

// A registration the client keeps alive. Copies share it.
class registration {
public:
    registration() = default;

    const std::string& instance_id() const;
    std::uint64_t lease_id() const;
    std::int64_t expires_at_ms() const;  // as of the last renewal
    std::uint64_t renewals() const;       // keepalives and re-registrations that succeeded
    std::uint64_t reregistrations() const;  // registrations under a new lease (the old one was gone)

    // Stops renewing and deregisters (not_found counts as done).
    template <typename Token = asio::use_awaitable_t<>>
    auto deregister(Token&& token = {}) {
        return detail::launch<done>(detail::executor_of(*s_), detail::deregister(s_), std::forward<Token>(token));
    }
    // Stops renewing; the lease runs out at its TTL.
    void stop();

private:
    friend class client;
    friend class detail::client_impl;
    explicit registration(std::shared_ptr<detail::registration_state> s) : s_(std::move(s)) {}
    std::shared_ptr<detail::registration_state> s_;
};

// A watch's stream of events, resumed across reconnects. Copies share it.
class subscription {
public:
    subscription() = default;

    // The next event (in revision order); an error ends the stream (closed
    // after cancel(), or what ended it: slow_consumer, a refused re-subscribe).
    template <typename Token = asio::use_awaitable_t<>>
    auto next(Token&& token = {}) {
        return detail::launch<event>(detail::executor_of(*s_), detail::next_event(s_), std::forward<Token>(token));
    }
    // The revision of the last event received.
    std::uint64_t last_revision() const;
    // Unsubscribes; a waiting next() completes with errc::closed.
    void cancel();

private:
    friend class client;
    friend class detail::client_impl;
    explicit subscription(std::shared_ptr<detail::subscription_state> s) : s_(std::move(s)) {}
    std::shared_ptr<detail::subscription_state> s_;
};

class client {
public:
    using executor_type = asio::any_io_executor;

    // Starts connecting to options::url (or the first of options::urls) at
    // once. Neither or both given, or a URL that does not parse: every
    // operation completes with connection_failed saying so.
    client(executor_type ex, options opts);
    // close(): the background work ends (once the executor runs it); the
    // leases are not deregistered and run out at their TTL.
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    executor_type get_executor() const;
    bool is_connected() const;
    // The URL of the current connection (or of the next attempt).
    const std::string& url() const;

    // Completes when connected, or with the error of the next round of
    // attempts that fails (with one URL, the next attempt; the last URL's
    // error: unauthorized, connection_failed, ...), or not_connected after
    // options::request_timeout (naming the last failed attempt's error, if
    // the next attempt is still in its backoff).
    template <typename Token = asio::use_awaitable_t<>>
    auto connect(Token&& token = {}) {
        return detail::launch<done>(get_executor(), connect_op(), std::forward<Token>(token));
    }

    template <typename Token = asio::use_awaitable_t<>>
    auto register_service(service_instance service, register_options opts = {}, Token&& token = {}) {
        return detail::launch<registration>(get_executor(), register_op(std::move(service), opts),
                                            std::forward<Token>(token));
    }

    template <typename Token = asio::use_awaitable_t<>>
    auto deregister(std::string instance_id, Token&& token = {}) {
        return detail::launch<done>(get_executor(), deregister_op(std::move(instance_id)), std::forward<Token>(token));
    }

    template <typename Token = asio::use_awaitable_t<>>
    auto get_service(std::string instance_id, Token&& token = {}) {
        return detail::launch<service_instance>(get_executor(), get_service_op(std::move(instance_id)),
                                                std::forward<Token>(token));
    }

    // Every instance of the service `name` (not_found when there is none).
    template <typename Token = asio::use_awaitable_t<>>
        requires(!std::is_same_v<std::remove_cvref_t<Token>, health_filter>)
    auto find_service(std::string name, Token&& token = {}) {
        return detail::launch<listing<service_instance>>(get_executor(), find_service_op(std::move(name), std::nullopt),
                                                         std::forward<Token>(token));
    }

    // The instances of `name` whose health passes `health` (none: not_found).
    template <typename Token = asio::use_awaitable_t<>>
    auto find_service(std::string name, health_filter health, Token&& token = {}) {
        return detail::launch<listing<service_instance>>(get_executor(), find_service_op(std::move(name), health),
                                                         std::forward<Token>(token));
    }

    template <typename Token = asio::use_awaitable_t<>>
    auto list_endpoints(endpoint_filter filter = {}, Token&& token = {}) {
        return detail::launch<listing<endpoint_info>>(get_executor(), list_endpoints_op(std::move(filter)),
                                                      std::forward<Token>(token));
    }

    // Subscribes; completes once registryd accepted the subscription.
    template <typename Token = asio::use_awaitable_t<>>
    auto watch(watch_options opts = {}, Token&& token = {}) {
        return detail::launch<subscription>(get_executor(), watch_op(std::move(opts)), std::forward<Token>(token));
    }

    // Closes the connection and ends every registration's renewals and every
    // watch; operations waiting complete with errc::closed.
    void close();

private:
    asio::awaitable<result<done>> connect_op();
    asio::awaitable<result<registration>> register_op(service_instance service, register_options opts);
    asio::awaitable<result<done>> deregister_op(std::string instance_id);
    asio::awaitable<result<service_instance>> get_service_op(std::string instance_id);
    asio::awaitable<result<listing<service_instance>>> find_service_op(std::string name,
                                                                       std::optional<health_filter> health);
    asio::awaitable<result<listing<endpoint_info>>> list_endpoints_op(endpoint_filter filter);
    asio::awaitable<result<subscription>> watch_op(watch_options opts);

    std::shared_ptr<detail::client_impl> impl_;
};

}  // namespace registry::client
