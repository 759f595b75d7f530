// The state behind registry::client::client: the connection (one at a
// time, to one of the URLs, reopened round robin with backoff), the
// requests in flight by id, the outbox the writer drains, and the
// registrations and watches that outlive connections. Everything runs on the client's executor; the coroutines
// hold the impl alive until close() ends them.
#pragma once

#include "notifier.hpp"
#include "resume_point.hpp"
#include "transport.hpp"
#include "wire.hpp"

#include <registry/client/client.hpp>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <simdjson.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace registry::client::detail {

using clock = std::chrono::steady_clock;

struct registration_state {
    registration_state(asio::any_io_executor e, service_instance s, register_options o)
        : ex(e), service(std::move(s)), opts(o), timer(e) {}
    std::weak_ptr<client_impl> client;
    asio::any_io_executor ex;
    service_instance service;  // instance_id: the one registryd gave (or was given)
    register_options opts;
    lease_info lease;
    std::uint64_t renewals = 0;
    std::uint64_t reregistrations = 0;
    bool stopped = false;
    bool renewing = false;  // a re-registration is under way (it moves with the connection)
    asio::steady_timer timer;  // the next keepalive
};

struct subscription_state {
    subscription_state(asio::any_io_executor e, watch_options o) : ex(e), opts(std::move(o)), resume(opts.events) {
        if (opts.from_revision) resume.start_at(*opts.from_revision);
    }
    std::weak_ptr<client_impl> client;
    asio::any_io_executor ex;
    watch_options opts;
    resume_point resume;
    bool subscribed_once = false;
    // A re-subscribe is under way: one that waits across a move to the
    // writer is sent on the next connection, which does not send another.
    bool resubscribing = false;
    std::string server_id;  // on the current connection; empty: not subscribed there
    std::deque<event> queue;
    notifier ready;
    std::optional<error> end;  // set: no more events after the queue
};

// A request in flight.
struct pending {
    pending(asio::any_io_executor ex, clock::time_point deadline, std::shared_ptr<subscription_state> s)
        : timer(ex, deadline), attach(std::move(s)) {}
    asio::steady_timer timer;  // its deadline; cancelled when the outcome is in
    std::optional<result<std::string>> outcome;  // the response's data (JSON) or error
    // subscribe: the watch the subscription id is attached to as the
    // response is read, before any of its events.
    std::shared_ptr<subscription_state> attach;
    // Answered not_writer this often already (on earlier connections); a
    // further not_writer moves it (`moved`) unless every URL had its turn.
    std::size_t not_writer = 0;
    bool moved = false;
};

class client_impl : public std::enable_shared_from_this<client_impl> {
public:
    client_impl(asio::any_io_executor ex, options opts);
    void start();
    void close();

    asio::any_io_executor executor() const { return ex_; }
    bool connected() const { return conn_ != nullptr; }
    // The URL of the current connection (or of the next attempt).
    const std::string& current_url() const;

    asio::awaitable<result<done>> wait_connected();
    // Sends a request (waiting for a connection first) and returns its data.
    asio::awaitable<result<std::string>> request(std::string action, std::string params,
                                                 std::shared_ptr<subscription_state> attach = {});

    asio::awaitable<result<registration>> register_service(service_instance s, register_options o);
    asio::awaitable<result<done>> deregister(std::shared_ptr<registration_state> r);
    void stop(const std::shared_ptr<registration_state>& r);
    asio::awaitable<result<subscription>> watch(watch_options o);
    void cancel(const std::shared_ptr<subscription_state>& s);

    simdjson::dom::parser& parser() { return parser_; }

private:
    asio::awaitable<void> run();
    asio::awaitable<void> read_loop(std::shared_ptr<transport> conn, std::string leftover);
    asio::awaitable<void> write_loop(std::shared_ptr<transport> conn);
    asio::awaitable<void> on_connected(std::uint64_t generation);
    asio::awaitable<void> keepalive_loop(std::shared_ptr<registration_state> r);
    asio::awaitable<void> renew(std::shared_ptr<registration_state> r);
    asio::awaitable<result<done>> reregister(const std::shared_ptr<registration_state>& r, bool with_lease);
    asio::awaitable<void> resubscribe(std::shared_ptr<subscription_state> s);
    asio::awaitable<void> unsubscribe(std::string server_id);

    void handle_message(std::string_view text);
    void deliver(const std::shared_ptr<subscription_state>& s, const wire::incoming& frame);
    void end_subscription(const std::shared_ptr<subscription_state>& s, error e);
    void connection_down();
    void leave_for_writer();
    void leave_when_answered();
    asio::awaitable<void> leave_after(std::shared_ptr<transport> conn);
    error no_connection() const;
    void enqueue_frame(std::uint8_t op, std::string_view payload);
    void report(const error& e);
    clock::duration backoff(std::uint64_t attempt);

    asio::any_io_executor ex_;
    options opts_;
    std::vector<std::string> url_texts_;  // as given
    std::vector<url> urls_;               // parsed, tried round robin
    std::size_t index_ = 0;               // the URL of the current (or next) connection
    std::optional<std::size_t> open_index_;  // the URL of the last connection that opened
    std::optional<asio::ssl::context> tls_;
    std::optional<error> setup_error_;  // no or bad URLs, a bad CA file: nothing to connect to

    std::shared_ptr<transport> conn_;  // the open connection
    std::uint64_t generation_ = 0;     // counts the connections opened
    std::uint64_t failed_rounds_ = 0;  // counts the rounds of URLs whose every attempt failed
    std::optional<error> last_error_;  // of the last failed attempt
    bool closed_ = false;
    // Moving to the writer: the connection is left once the answers in
    // flight are in (or after a second); meanwhile nothing new is sent on it.
    bool leaving_ = false;
    bool moved_ = false;  // the last connection was left for the writer
    notifier state_changed_;
    asio::steady_timer reconnect_timer_;
    asio::steady_timer leave_timer_;

    std::deque<std::string> outbox_;  // whole frames
    notifier outbox_ready_;
    std::map<std::string, std::shared_ptr<pending>> pending_;
    std::uint64_t next_id_ = 1;

    std::vector<std::shared_ptr<registration_state>> registrations_;
    std::vector<std::shared_ptr<subscription_state>> subscriptions_;

    std::mt19937 rng_;
    simdjson::dom::parser parser_;
};

}  // namespace registry::client::detail
