// etcd's JSON gateway (/v3/kv/..., /v3/lease/..., /v3/watch; keys and values
// base64) as registryd's etcd store calls it (store/etcd_store_port.hpp):
// the endpoints are tried in order from the last one that answered, each
// within the dial timeout (a TLS handshake within another), and a request
// gets the request timeout. Also what the store's parts share: its options,
// the error for an etcd that cannot be asked, the layout's meta keys.
#pragma once

#include "engine/engine_http.hpp"
#include "store/etcd_probe.hpp"
#include "store/etcd_tls.hpp"

#include <registry/ports/store.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <simdjson.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio {
class io_context;
}
namespace registry::detail {
class json_writer;
}

namespace registryd {

struct etcd_options {
    // http://host:port, or all https://host:port (TLS with `tls`).
    std::vector<std::string> endpoints{"http://127.0.0.1:2379"};
    std::string prefix = "/registry/";
    std::chrono::milliseconds dial_timeout{2000};
    std::chrono::milliseconds request_timeout{5000};
    etcd_tls_options tls;  // https:// endpoints
    std::chrono::seconds writer_lease_ttl{5};
};

// Under the prefix, beside the registry's keys: the registry's revision,
// written by every transaction of the writer, and the writer key.
inline constexpr std::string_view etcd_revision_key = "meta/revision";
inline constexpr std::string_view etcd_writer_key = "meta/writer";

// etcd could not be asked, or could not answer (no endpoint reachable, no
// answer within the timeout, HTTP 5xx: no leader, too busy): the store stays
// usable, and what failed may be tried again.
class etcd_unreachable : public registry::store_error {
public:
    using registry::store_error::store_error;
};

// The first key after every key that starts with `prefix` (etcd's range_end).
std::string etcd_prefix_end(std::string prefix);
// A decimal number of etcd's JSON (int64 fields come as strings); store_error otherwise.
std::uint64_t etcd_number(std::string_view s);
// A string field of an answer; store_error when it is missing.
std::string_view etcd_field(simdjson::dom::element e, const char* field);
// A txn's "compare" array with one condition: the key (base64) was created
// at `create_revision` (0: the key does not exist).
void etcd_compare_created(registry::detail::json_writer& w, const std::string& key, std::uint64_t create_revision);

// A watch stream, opened (HTTP 200), and the endpoint that serves it.
struct etcd_stream {
    http_stream stream;
    std::string endpoint;
};

class etcd_gateway {
public:
    etcd_gateway(boost::asio::io_context& io, const etcd_options& options);

    // POSTs `body` to `target`; the answer's JSON, valid until the next
    // call(), or etcd_unreachable / store_error (an answer of etcd's that
    // refuses the request, HTTP 4xx).
    registry::task<simdjson::dom::element> call(std::string target, std::string body);

    // POSTs `body` to `target` and leaves the answer's body to the stream
    // (the watch); an error naming what every endpoint answered otherwise.
    registry::task<registry::result<etcd_stream>> open_stream(std::string target, std::string body,
                                                              std::stop_token stop);

    // Clients of its own for /healthz's probe, made the same way.
    std::unique_ptr<etcd_probe> make_probe(boost::asio::io_context& io) const;

    const etcd_options& options() const noexcept { return opts_; }
    // The most a body (a watch message) may hold.
    std::size_t max_body_bytes() const noexcept { return clients_.front().options().max_body_bytes; }

private:
    const etcd_options opts_;
    std::vector<engine_http_client> clients_;
    std::size_t current_ = 0;
    simdjson::dom::parser parser_;  // the io thread's; an answer is read before the next call
};

}  // namespace registryd
