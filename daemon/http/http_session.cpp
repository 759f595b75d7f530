#include "http/http_session.hpp"

#include "http/handshake.hpp"
#include "http/services_view.hpp"
#include "observability/log.hpp"
#include "server_state.hpp"
#include "websocket/session.hpp"

#include <registry/registry.hpp>

#include <boost/beast/http/read.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/write.hpp>

#include <utility>

namespace registryd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// Plain HTTP requests are tiny (GET without a body).
constexpr std::size_t http_header_limit = 16 * 1024;
constexpr std::uint64_t http_body_limit = 64 * 1024;

std::string endpoint_string(const tcp::socket& s) {
    error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) return "?";
    const auto addr = ep.address();
    return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" + std::to_string(ep.port());
}

asio::ip::address peer_address(const tcp::socket& s) {
    error_code ec;
    auto ep = s.remote_endpoint(ec);
    return ec ? asio::ip::address{} : ep.address();
}

}  // namespace

http_session::http_session(std::shared_ptr<server::state> st, std::uint64_t id, tcp::socket&& socket,
                           source_slot slot)
    : st_(std::move(st)),
      slot_(std::move(slot)),
      id_(id),
      remote_(endpoint_string(socket)),
      peer_(peer_address(socket)),
      stream_(std::move(socket)) {}

http_session::~http_session() {
    st_->http_sessions.erase(id_);
    st_->check_drained();
}

void http_session::run() {
    st_->http_sessions.emplace(id_, weak_from_this());
    do_read();
}

void http_session::shutdown() {
    if (!writing_) close();
}

void http_session::close() {
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
}

void http_session::do_read() {
    parser_.emplace();
    parser_->header_limit(http_header_limit);
    parser_->body_limit(http_body_limit);
    // Bounds both the first request (and so the WebSocket handshake
    // request) and an idle keep-alive connection.
    stream_.expires_after(st_->cfg.timeouts.handshake);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_read(ec); });
}

void http_session::on_read(const error_code& ec) {
    if (ec == http::error::end_of_stream) {
        error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        return;
    }
    if (ec == http::error::header_limit) {
        respond(http::status::request_header_fields_too_large, "request header fields too large\n", false);
        return;
    }
    if (ec == http::error::body_limit) {
        respond(http::status::payload_too_large, "request body too large\n", false);
        return;
    }
    if (ec) {
        if (ec != beast::error::timeout && ec != asio::error::operation_aborted) {
            log::debug("http read failed", {{"conn", id_}, {"error", ec.message()}});
        }
        return;
    }

    auto& req = parser_->get();
    // Any request naming the websocket upgrade goes to the handshake's
    // checks (an HTTP/1.0 or POST one is refused there with 400, not 404).
    const auto upgrade_field = req.find(http::field::upgrade);
    if (upgrade_field != req.end() && http::token_list{upgrade_field->value()}.exists("websocket")) {
        upgrade();
        return;
    }

    const bool keep_alive = req.keep_alive();
    const std::string_view full_target = req.target();
    const std::string_view target = full_target.substr(0, full_target.find('?'));

    // The registry view follows the WebSocket's access rules (the discover family).
    if (target == "/v1/services" || target.starts_with("/v1/services/")) {
        auto admitted = admit();
        if (const auto* r = std::get_if<access::refusal>(&admitted)) {
            refuse(*r, keep_alive);
            return;
        }
        const auto& who = *std::get<access::gate::caller>(admitted);
        if (!who.permissions.allows(registry::protocol::permission_family::discover)) {
            refuse(access::gate::lacks(who, registry::protocol::permission_family::discover, "GET /v1/services"),
                   keep_alive);
            return;
        }
    }
    if (auto view = answer_services_view(req.method_string(), full_target, st_->reg,
                                         st_->cfg.listings.max_page_items)) {
        const std::string_view allow = view->allow;
        respond(static_cast<http::status>(view->status), std::move(view->body), keep_alive, "application/json", allow);
        return;
    }

    if (auto file = answer_console(req.method_string(), target)) {
        respond_console(*file, keep_alive);
        return;
    }

    if (req.method() == http::verb::get && target == "/healthz") {
        if (st_->reg.available()) {
            respond(http::status::ok, "ok\n", keep_alive);
        } else {
            respond(http::status::service_unavailable, "unavailable\n", keep_alive);
        }
    } else if (req.method() == http::verb::get && target == "/metrics") {
        if (st_->cfg.http.metrics_token_required) {
            auto admitted = admit();  // any role will do
            if (const auto* r = std::get_if<access::refusal>(&admitted)) {
                refuse(*r, keep_alive);
                return;
            }
        }
        respond(http::status::ok, st_->m.render(st_->gauges()), keep_alive, "text/plain; version=0.0.4; charset=utf-8");
    } else {
        respond(http::status::not_found, "not found\n", keep_alive);
    }
}

void http_session::upgrade() {
    if (st_->shutting_down) {
        respond(http::status::service_unavailable, "shutting down\n", false);
        return;
    }
    if (st_->m.connections() >= st_->cfg.limits.max_connections) {
        st_->m.connection_refused();
        st_->m.refused("max_connections");
        log::warn("connection limit reached, upgrade refused",
                  {{"remote", remote_}, {"max_connections", st_->cfg.limits.max_connections}});
        respond(http::status::service_unavailable, "too many connections\n", false);
        return;
    }
    auto admitted = admit();
    if (const auto* r = std::get_if<access::refusal>(&admitted)) {
        refuse(*r, false);
        return;
    }
    // The socket moves to the WebSocket session; this session ends.
    error_code ec;
    ws_socket socket = adopt_socket(st_->ioc, stream_.release_socket(), ec);
    if (ec) {
        log::debug("websocket handshake failed", {{"conn", id_}, {"remote", remote_}, {"error", ec.message()}});
        return;
    }
    auto ws = std::make_shared<ws_session>(st_, id_, std::move(socket), remote_, std::move(slot_),
                                           std::get<access::gate::caller>(std::move(admitted)));
    const auto early = buffer_.data();
    ws->run(answer_upgrade(parser_->release()),
            std::string_view(static_cast<const char*>(early.data()), early.size()));
}

std::variant<access::gate::caller, access::refusal> http_session::admit() {
    const auto& req = parser_->get();
    auto header = [&](http::field f) -> std::optional<std::string_view> {
        const auto it = req.find(f);
        if (it == req.end()) return std::nullopt;
        return it->value();
    };
    access::credentials c;
    c.source = peer_;
    c.origin = header(http::field::origin);
    c.host = header(http::field::host).value_or(std::string_view{});
    c.authorization = header(http::field::authorization).value_or(std::string_view{});
    c.target = req.target();
    // TLS HOOK: c.subject = the verified client certificate's subject (mutual TLS).
    return st_->gate.admit(c, access::gate::clock::now());
}

// 401 (with WWW-Authenticate: Bearer), 403 or 429 (with Retry-After), with
// a JSON body saying why. The token is never logged.
void http_session::refuse(const access::refusal& r, bool keep_alive) {
    log::warn("access refused", {{"remote", remote_},
                                 {"status", static_cast<std::uint64_t>(r.status)},
                                 {"code", r.code},
                                 {"target", log::clip(std::string_view(parser_->get().target()).substr(
                                                0, parser_->get().target().find('?')))}});
    start_response(static_cast<http::status>(r.status), keep_alive, "application/json");
    if (r.status == 401) res_->set(http::field::www_authenticate, "Bearer");
    if (r.retry_after.count() > 0) res_->set(http::field::retry_after, std::to_string(r.retry_after.count()));
    finish_response(r.body());
}

void http_session::respond(http::status status, std::string body, bool keep_alive, std::string_view content_type,
                           std::string_view allow) {
    start_response(status, keep_alive, content_type);
    if (!allow.empty()) res_->set(http::field::allow, allow);
    finish_response(std::move(body));
}

void http_session::respond_console(const console_answer& a, bool keep_alive) {
    start_response(static_cast<http::status>(a.status), keep_alive, a.content_type);
    res_->set("Content-Security-Policy", console_security_policy);
    res_->set("X-Content-Type-Options", "nosniff");
    res_->set("Referrer-Policy", "no-referrer");
    // Always revalidated: a new registryd serves its own console at once.
    res_->set(http::field::cache_control, "no-cache");
    if (a.status == 405) res_->set(http::field::allow, "GET");
    if (!a.location.empty()) res_->set(http::field::location, a.location);
    finish_response(std::string(a.body));
}

void http_session::start_response(http::status status, bool keep_alive, std::string_view content_type) {
    if (st_->shutting_down) keep_alive = false;
    res_.emplace(status, parser_->get().version());
    res_->set(http::field::server, server_name);
    res_->set(http::field::content_type, content_type);
    res_->keep_alive(keep_alive);
}

void http_session::finish_response(std::string body) {
    res_->body() = std::move(body);
    res_->prepare_payload();
    writing_ = true;
    http::async_write(stream_, *res_,
                      [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_write(ec); });
}

void http_session::on_write(const error_code& ec) {
    writing_ = false;
    const bool keep_alive = res_->keep_alive();
    res_.reset();
    if (ec) return;
    if (!keep_alive || st_->shutting_down) {
        error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        linger();
        return;
    }
    do_read();
}

// After the last response: what the client still sends (the rest of a
// refused header block) is read and discarded until it hangs up, within the
// handshake timeout. Closing with unread bytes would send a reset, which can
// destroy the response before the client reads it.
void http_session::linger() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](const error_code& ec, std::size_t) {
        if (!ec) self->linger();
    });
}

}  // namespace registryd
