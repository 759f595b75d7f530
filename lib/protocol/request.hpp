// A request frame decoded into plain values (docs/protocol.md, "Actions"):
// nothing in here points into the JSON text or the parser, so a handler can
// suspend while the parser moves on to the next frame.
#pragma once

#include <registry/container_manager.hpp>
#include <registry/error.hpp>
#include <registry/registry.hpp>
#include <registry/repl/execution.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace registry::protocol {

struct register_params {
    static constexpr std::string_view action = "register";
    registration reg;
};

struct keepalive_params {
    static constexpr std::string_view action = "keepalive";
    std::uint64_t lease_id = 0;
};

struct deregister_params {
    static constexpr std::string_view action = "deregister";
    std::string instance_id;
};


// A listing's page (docs/protocol.md, "Limits"): the first page has the
// filters, the next ones only the token the previous page gave.
struct page_params {
    std::optional<std::uint64_t> limit;  // at most limits::max_page_items whatever is asked
    std::optional<std::string> continue_token;
};

struct get_service_params {
    static constexpr std::string_view action = "get_service";
    std::string key;       // an instance id, or a service name when by_name
    bool by_name = false;  // also with page.continue_token (key then empty)
    page_params page;      // by_name only
};

struct list_services_params {
    static constexpr std::string_view action = "list_services";
    service_filter filter;
    page_params page;
};

struct list_endpoints_params {
    static constexpr std::string_view action = "list_endpoints";
    endpoint_filter filter;
    page_params page;
};

struct set_state_params {
    static constexpr std::string_view action = "set_state";
    std::string instance_id;
    service_state state = service_state::registered;
    std::string reason;
};

struct subscribe_params {
    static constexpr std::string_view action = "subscribe";
    watch_options watch;  // everything but the stop token
};

struct unsubscribe_params {
    static constexpr std::string_view action = "unsubscribe";
    std::string subscription;
};

// ---- containers (container_manager.hpp)

struct container_create_params {
    static constexpr std::string_view action = "container_create";
    container_request request;
};

struct container_list_params {
    static constexpr std::string_view action = "container_list";
    std::optional<std::string> engine;
    std::optional<managed_state> state;
};

struct container_get_params {
    static constexpr std::string_view action = "container_get";
    std::string container_id;
};

struct container_logs_params {
    static constexpr std::string_view action = "container_logs";
    std::string container_id;
    std::optional<std::uint64_t> tail;  // lines
    bool follow = false;
};

struct container_stop_params {
    static constexpr std::string_view action = "container_stop";
    std::string container_id;
    std::optional<std::uint64_t> grace_seconds;
};

struct container_remove_params {
    static constexpr std::string_view action = "container_remove";
    std::string container_id;
    bool force = false;
};

struct container_extend_params {
    static constexpr std::string_view action = "container_extend";
    std::string container_id;
    std::optional<seconds> ttl;
};

struct image_pull_params {
    static constexpr std::string_view action = "image_pull";
    std::string reference;
    std::optional<std::string> engine;
};

struct list_nodes_params {
    static constexpr std::string_view action = "list_nodes";
};

// Deployment (docs/protocol.md, "Deployment").
struct deploy_package_params {
    static constexpr std::string_view action = "deploy_package";
    // Exactly one: an uploaded package, or an archive on the daemon's host.
    std::optional<std::string> upload_id;
    std::optional<std::string> path;
    std::string target = "local";
    std::optional<std::string> name;
    std::optional<std::string> version;
};

struct package_upload_begin_params {
    static constexpr std::string_view action = "package_upload_begin";
    std::uint64_t size = 0;
    std::string sha256;  // lowercased
};

struct package_upload_chunk_params {
    static constexpr std::string_view action = "package_upload_chunk";
    std::string upload_id;
    std::uint64_t offset = 0;
    std::string data;  // decoded from base64
};

struct package_upload_status_params {
    static constexpr std::string_view action = "package_upload_status";
    std::string upload_id;
};

struct service_action_params {
    static constexpr std::string_view action = "service_action";
    std::string instance_id;
    std::string command;  // start, stop, restart
};

struct undeploy_params {
    static constexpr std::string_view action = "undeploy";
    std::string instance_id;
    bool force = false;
};

// ---- REPL execution (repl/executor.hpp)

struct repl_languages_params {
    static constexpr std::string_view action = "repl_languages";
};

struct repl_execute_params {
    static constexpr std::string_view action = "repl_execute";
    repl::request req;
};

struct repl_cancel_params {
    static constexpr std::string_view action = "repl_cancel";
    std::string execution_id;
};

using request_params = std::variant<register_params, keepalive_params, deregister_params, get_service_params,
                                    list_services_params, list_endpoints_params, set_state_params,
                                    subscribe_params, unsubscribe_params, container_create_params,
                                    container_list_params, container_logs_params, container_stop_params,
                                    container_remove_params, container_extend_params, image_pull_params,
                                    list_nodes_params, container_get_params, deploy_package_params, package_upload_begin_params,
                                    package_upload_chunk_params, package_upload_status_params, service_action_params,
                                    undeploy_params, repl_languages_params, repl_execute_params,
                                    repl_cancel_params>;

struct request {
    std::string id;
    request_params params;
};

// A frame that is not a valid request, and what to answer.
struct rejection {
    std::optional<std::string> id;  // null in the response when the id was unreadable
    std::string_view action;        // empty unless the action was recognised
    error err;
};

using parsed_frame = std::variant<request, rejection>;

}  // namespace registry::protocol
