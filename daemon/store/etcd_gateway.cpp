#include "store/etcd_gateway.hpp"

#include "codec/json_writer.hpp"

#include <charconv>
#include <stdexcept>
#include <utility>

namespace registryd {

namespace {

namespace dom = simdjson::dom;
using registry::store_error;

std::string tcp_uri(const std::string& endpoint) {
    if (endpoint.starts_with("http://")) return "tcp://" + endpoint.substr(7);
    if (endpoint.starts_with("https://")) return "tcp://" + endpoint.substr(8);
    return endpoint;  // config validation allows http:// and https:// only
}

}  // namespace

std::string etcd_prefix_end(std::string prefix) {
    while (!prefix.empty()) {
        if (static_cast<unsigned char>(prefix.back()) < 0xff) {
            prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
            return prefix;
        }
        prefix.pop_back();
    }
    return std::string(1, '\0');  // every key
}

std::uint64_t etcd_number(std::string_view s) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size()) throw store_error("etcd: not a number: '" + std::string(s) + "'");
    return v;
}

std::string_view etcd_field(dom::element e, const char* field) {
    std::string_view s;
    if (e[field].get(s) != simdjson::SUCCESS) throw store_error(std::string("etcd: no '") + field + "' in its answer");
    return s;
}

void etcd_compare_created(registry::detail::json_writer& w, const std::string& key, std::uint64_t create_revision) {
    w.key("compare").begin_array()
        .begin_object().key("key").string(key).key("result").string("EQUAL").key("target").string("CREATE")
        .key("create_revision").string(std::to_string(create_revision)).end_object()
        .end_array();
}

etcd_gateway::etcd_gateway(boost::asio::io_context& io, const etcd_options& options) : opts_(options) {
    std::shared_ptr<boost::asio::ssl::context> tls;  // one for every https:// endpoint
    for (const auto& e : opts_.endpoints) {
        auto endpoint = engine_endpoint::parse(tcp_uri(e));
        if (!endpoint) throw std::invalid_argument("etcd endpoint " + e + ": " + endpoint.err().message);
        http_client_options client;
        client.connect_timeout = opts_.dial_timeout;
        client.request_timeout = opts_.request_timeout;
        client.max_body_bytes = 64u << 20;
        client.peer_kind = "etcd";
        if (e.starts_with("https://")) {
            if (!tls) tls = make_etcd_tls_context(opts_.tls);
            client.tls = tls;
            client.tls_server_name = opts_.tls.server_name;
        }
        clients_.emplace_back(io, *endpoint, std::move(client));
    }
}

std::unique_ptr<etcd_probe> etcd_gateway::make_probe(boost::asio::io_context& io) const {
    return std::make_unique<etcd_probe>(io, clients_, opts_.endpoints);
}

registry::task<dom::element> etcd_gateway::call(std::string target, std::string body) {
    std::string problem;
    for (std::size_t tried = 0; tried < clients_.size(); ++tried) {
        const std::size_t i = (current_ + tried) % clients_.size();
        http_request req{"POST", target, body, "application/json", false};
        auto r = co_await clients_[i].request(std::move(req));
        if (!r) {
            problem = opts_.endpoints[i] + ": " + r.err().message;
            continue;
        }
        current_ = i;
        dom::element doc;
        if (parser_.parse(r->body).get(doc) != simdjson::SUCCESS) {
            throw store_error("etcd " + opts_.endpoints[i] + target + ": HTTP " + std::to_string(r->status) +
                              " with a body that is not JSON");
        }
        if (r->status != 200) {
            std::string_view message;
            if (doc["message"].get(message) != simdjson::SUCCESS) message = "no message";
            std::string what = "etcd " + opts_.endpoints[i] + target + ": HTTP " + std::to_string(r->status) + ": " +
                               std::string(message);
            if (r->status >= 500) throw etcd_unreachable(what);
            throw store_error(what);
        }
        co_return doc;
    }
    throw etcd_unreachable("etcd unreachable: " + problem);
}

registry::task<registry::result<etcd_stream>> etcd_gateway::open_stream(std::string target, std::string body,
                                                                        std::stop_token stop) {
    std::string tried;
    for (std::size_t attempt = 0; attempt < clients_.size(); ++attempt) {
        const std::size_t i = (current_ + attempt) % clients_.size();
        // Named locals: GCC 12 mishandles temporaries in a co_await expression.
        http_request req{"POST", target, body, "application/json", false};
        auto stream = co_await clients_[i].open(std::move(req), stop);
        if (!stream) {
            tried += (tried.empty() ? "" : "; ") + opts_.endpoints[i] + ": " + stream.err().message;
            continue;
        }
        if (stream->status() != 200) {
            auto answer = co_await stream->read_all(opts_.request_timeout, stop);
            tried += (tried.empty() ? "" : "; ") + opts_.endpoints[i] + target + ": HTTP " +
                     std::to_string(stream->status()) + (answer ? ": " + answer->substr(0, 200) : std::string());
            continue;
        }
        current_ = i;
        co_return etcd_stream{std::move(*stream), opts_.endpoints[i]};
    }
    co_return registry::fail(registry::errc::unavailable, "etcd unreachable: " + tried);
}

}  // namespace registryd
