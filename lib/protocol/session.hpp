// One connection's protocol state: request dispatch, subscriptions and their
// pumps. The connection owns it and every handler in flight holds it too, so a
// handler that resumes after the connection is gone finds it closed (and
// sends nothing) rather than freed.
#pragma once

#include "request.hpp"
#include "response.hpp"

#include <registry/async_generator.hpp>
#include <registry/async_scope.hpp>
#include <registry/protocol/connection.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

namespace registry::protocol {

class session : public std::enable_shared_from_this<session> {
public:
    session(server& srv, outbox& out, session_id id, std::string source)
        : srv_(srv), out_(&out), id_(id), source_(std::move(source)) {}
    session(const session&) = delete;
    session& operator=(const session&) = delete;

    // Decodes `text` before returning (the caller's buffer may then go away)
    // and returns the task that answers it.
    static task<outcome> handle(std::shared_ptr<session> self, std::string_view text);

    outcome reject(errc code, std::string message);
    void close();
    std::size_t subscription_count() const noexcept { return subscriptions_.size(); }

private:
    // One request being answered.
    struct call {
        std::string id;
        bool answered = false;
    };

    static task<outcome> run(std::shared_ptr<session> self, parsed_frame frame);

    // The actions (actions.cpp). On success the handler has replied; an error
    // is left to run() to send.
    task<result<void>> on(call& c, register_params& p);
    task<result<void>> on(call& c, keepalive_params& p);
    task<result<void>> on(call& c, deregister_params& p);
    task<result<void>> on(call& c, get_service_params& p);
    task<result<void>> on(call& c, list_services_params& p);
    task<result<void>> on(call& c, list_endpoints_params& p);
    task<result<void>> on(call& c, set_state_params& p);
    task<result<void>> on(call& c, subscribe_params& p);
    task<result<void>> on(call& c, unsubscribe_params& p);
    // Containers (container_actions.cpp).
    task<result<void>> on(call& c, container_create_params& p);
    task<result<void>> on(call& c, container_list_params& p);
    task<result<void>> on(call& c, container_logs_params& p);
    task<result<void>> on(call& c, container_stop_params& p);
    task<result<void>> on(call& c, container_remove_params& p);
    task<result<void>> on(call& c, container_extend_params& p);
    task<result<void>> on(call& c, image_pull_params& p);
    task<result<void>> on(call& c, list_nodes_params& p);
    task<result<void>> on(call& c, container_get_params& p);

    // deploy_actions.cpp
    task<result<void>> on(call& c, deploy_package_params& p);
    task<result<void>> on(call& c, service_action_params& p);
    task<result<void>> on(call& c, undeploy_params& p);
    // upload_actions.cpp
    task<result<void>> on(call& c, package_upload_begin_params& p);
    task<result<void>> on(call& c, package_upload_chunk_params& p);
    task<result<void>> on(call& c, package_upload_status_params& p);

    // REPL execution (repl_actions.cpp).
    task<result<void>> on(call& c, repl_languages_params& p);
    task<result<void>> on(call& c, repl_execute_params& p);
    task<result<void>> on(call& c, repl_cancel_params& p);
    friend class repl_listener;

    // Sends {"id":..,"type":"response","data":<write_data(w)>}; false if refused.
    // `data_capacity`: see encode_response().
    template <typename WriteData>
    bool reply(call& c, WriteData&& write_data, std::size_t data_capacity = 200);
    bool reply_encoded(call& c, std::string response);  // an encode_response() text (deploy_actions.cpp)
    void send_error(const std::string* id, const error& err);
    bool send(frame f);

    // Both subscription quotas: per connection and per source address.
    result<void> may_subscribe() const;
    void start_subscription(std::string id, async_generator<event_ptr> events, std::stop_source stop);
    // Every change to subscriptions_ goes through these two, which keep the
    // per-source count (server::impl::subscriptions_by_source) true.
    std::optional<std::stop_source> forget_subscription(std::string_view id);
    void count_for_source(std::size_t added, std::size_t removed);

    // One page of a listing (list_services, list_endpoints, get_service by
    // name): the first from `all`, found now; a next one from the listing its
    // token names. `write_item(w, item)` writes one element of the `key` array.
    template <typename Item, typename WriteItem>
    result<void> send_page(call& c, std::string_view action, const page_params& page, std::string_view key,
                           const std::function<std::vector<Item>()>& all, WriteItem&& write_item);
    // A subscription of its own for a per-request stream (log follow, pull):
    // answers {"subscription": id, <write_more>} and then streams `open`'s events.
    result<void> stream(call& c, const std::function<async_generator<event_ptr>(std::stop_token)>& open,
                        const std::function<void(detail::json_writer&)>& write_more);
    result<container_manager*> containers();
    task<void> pump(std::string id, async_generator<event_ptr> events, std::stop_token stop);
    void stop_subscriptions();

    registry& reg() noexcept { return srv_.reg(); }

    server& srv_;
    outbox* out_;  // not touched once closed: the embedder may have destroyed it
    session_id id_;
    std::string source_;  // the peer's address, for per-source quotas; empty: none
    bool closed_ = false;
    std::map<std::string, std::stop_source, std::less<>> subscriptions_;
    std::uint64_t subscriptions_started_ = 0;  // names them s1, s2, ...
    async_scope pumps_;
};

template <typename WriteData>
bool session::reply(call& c, WriteData&& write_data, std::size_t data_capacity) {
    frame f{encode_response(c.id, std::forward<WriteData>(write_data), data_capacity), nullptr, frame_kind::response};
    c.answered = true;
    return send(std::move(f));
}

}  // namespace registry::protocol
