#include "http/http_session.hpp"

#include "access/credentials.hpp"
#include "cluster/engine_tunnel.hpp"
#include "cluster/target_offer.hpp"
#include "cluster/target_wire.hpp"
#include "http/handshake.hpp"
#include "http/services_view.hpp"
#include "http/url_encoding.hpp"
#include "observability/log.hpp"
#include "runtime/detached_task.hpp"
#include "server_state.hpp"
#include "tls/tls_stream.hpp"
#include "websocket/session.hpp"

#include <registry/registry.hpp>

#include <boost/beast/http/read.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>

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

// The answer to plain HTTP on the TLS port (what nginx does): a client that
// forgot https:// or wss:// learns why, instead of waiting for a timeout.
constexpr std::string_view plain_http_body = "this port speaks TLS only: use https:// or wss://\n";
const std::string plain_http_answer = "HTTP/1.1 400 Bad Request\r\nServer: registryd\r\n"
                                      "Content-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                                      std::to_string(plain_http_body.size()) + "\r\nConnection: close\r\n\r\n" +
                                      std::string(plain_http_body);

asio::ip::address peer_address(const tcp::socket& s) {
    error_code ec;
    auto ep = s.remote_endpoint(ec);
    return ec ? asio::ip::address{} : ep.address();
}

}  // namespace

// The TLS side of a session (config `tls`); the timer bounds the handshake
// and each request as the TCP stream's expiry does on a plain connection.
struct http_session::tls_state {
    tls_state(SSL_CTX* ctx, tcp::socket& socket)
        : channel(ctx, static_cast<int>(socket.native_handle())), stream(socket, channel), timer(socket.get_executor()) {}
    tls_channel channel;
    tls_stream stream;
    asio::steady_timer timer;
    std::optional<std::string> peer_subject;
};

http_session::http_session(std::shared_ptr<server::state> st, std::uint64_t id, tcp::socket&& socket,
                           source_slot slot)
    : st_(std::move(st)),
      slot_(std::move(slot)),
      id_(id),
      remote_(endpoint_string(socket)),
      peer_(peer_address(socket)),
      stream_(std::move(socket)) {
    if (st_->tls) {
        error_code ec;
        stream_.socket().non_blocking(true, ec);  // the TLS channel reads and writes the descriptor itself
        tls_ = std::make_unique<tls_state>(st_->tls->native(), stream_.socket());
    }
}

http_session::~http_session() {
    st_->http_sessions.erase(id_);
    st_->check_drained();
}

void http_session::run() {
    st_->http_sessions.emplace(id_, weak_from_this());
    if (!tls_) {
        do_read();
        return;
    }
    if (!tls_->channel.valid()) {
        log::warn("cannot make a TLS connection", {{"conn", id_}, {"remote", remote_}});
        close();
        return;
    }
    arm_tls_timer();
    tls_->stream.async_handshake([self = shared_from_this()](const error_code& ec, std::size_t) { self->on_handshake(ec); });
}

const std::optional<std::string>& http_session::tls_peer_subject() const noexcept {
    static const std::optional<std::string> none;
    return tls_ ? tls_->peer_subject : none;
}

void http_session::arm_tls_timer() { arm_tls_timer(st_->cfg.timeouts.handshake); }

void http_session::arm_tls_timer(std::chrono::milliseconds after) {
    tls_->timer.expires_after(after);
    tls_->timer.async_wait([weak = weak_from_this()](const error_code& ec) {
        if (ec) return;
        if (auto self = weak.lock()) self->close();  // pending waits end with operation_aborted
    });
}

void http_session::on_handshake(const error_code& ec) {
    if (ec) {
        if (tls_->channel.peer_sent_plain_http()) {
            refuse_plain_http();
            return;
        }
        log::debug("tls handshake failed", {{"conn", id_},
                                            {"remote", remote_},
                                            {"error", ec == asio::error::connection_aborted ? tls_->channel.error()
                                                                                            : ec.message()}});
        close();
        return;
    }
    tls_->peer_subject = tls_->channel.peer_subject();
    if (tls_->peer_subject) {
        log::debug("tls client certificate", {{"conn", id_}, {"remote", remote_}, {"subject", log::clip(*tls_->peer_subject)}});
    }
    do_read();
}

// The request's bytes were read by OpenSSL; the answer goes out in clear.
void http_session::refuse_plain_http() {
    log::debug("plain HTTP on the TLS port refused", {{"conn", id_}, {"remote", remote_}});
    [[maybe_unused]] const auto n = ::send(stream_.socket().native_handle(), plain_http_answer.data(),
                                           plain_http_answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    linger();
}

template <typename F>
void http_session::with_stream(F&& f) {
    if (tls_) {
        f(tls_->stream);
    } else {
        f(stream_);
    }
}

void http_session::shutdown() {
    if (!writing_) close();
}

void http_session::close() {
    if (tls_) tls_->timer.cancel();
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
}

void http_session::expect_within(std::chrono::milliseconds after) {
    if (tls_) {
        arm_tls_timer(after);
    } else {
        stream_.expires_after(after);
    }
}

void http_session::expect_forever() {
    if (tls_) {
        tls_->timer.cancel();
    } else {
        stream_.expires_never();
    }
}

void http_session::do_read() {
    parser_.emplace();
    parser_->header_limit(http_header_limit);
    parser_->body_limit(http_body_limit);
    // Bounds both the first request (and so the WebSocket handshake
    // request) and an idle keep-alive connection.
    if (tls_) {
        arm_tls_timer();
    } else {
        stream_.expires_after(st_->cfg.timeouts.handshake);
    }
    with_stream([&](auto& stream) {
        http::async_read_header(stream, buffer_, *parser_,
                                [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_header(ec); });
    });
}

void http_session::on_header(const error_code& ec) {
    if (ec) {
        on_read(ec);
        return;
    }
    request_version_ = parser_->get().version();
    if (std::string_view(parser_->get().target()).starts_with(target_call_path)) {
        open_target_call();
        return;
    }
    if (parser_->is_done()) {
        on_read(ec);
        return;
    }
    with_stream([&](auto& stream) {
        http::async_read(stream, buffer_, *parser_,
                         [self = shared_from_this()](const error_code& e, std::size_t) { self->on_read(e); });
    });
}

void http_session::on_read(const error_code& ec) {
    if (ec == http::error::end_of_stream) {
        if (tls_) tls_->channel.close_notify();
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
    if (upgrade_field != req.end() && http::token_list{upgrade_field->value()}.exists(engine_tunnel_protocol)) {
        open_engine_tunnel();
        return;
    }

    const bool keep_alive = req.keep_alive();
    const std::string_view full_target = req.target();
    const std::string_view target = full_target.substr(0, full_target.find('?'));

    // The registry view follows the WebSocket's access rules (the discover
    // family; lease ids only for their holder and admins).
    const registry::identity* viewer = &registry::identity::anonymous();
    access::gate::caller viewing;
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
        viewing = std::get<access::gate::caller>(std::move(admitted));
        viewer = &viewing->who;
    }
    if (auto view = answer_services_view(req.method_string(), full_target, st_->reg,
                                         st_->cfg.listings.max_page_items, *viewer)) {
        const std::string_view allow = view->allow;
        respond(static_cast<http::status>(view->status), std::move(view->body), keep_alive, "application/json", allow);
        return;
    }

    if (auto file = answer_console(req.method_string(), target)) {
        respond_console(*file, keep_alive);
        return;
    }

    if (req.method() == http::verb::get && target == "/healthz") {
        // "ok" or "unavailable: <why>", then the store's kind and what it
        // last saw of its server.
        const store_health health = st_->store_health ? st_->store_health() : store_health{};
        const std::string store_line =
            "store: " + health.kind + (health.detail.empty() ? "" : ", " + health.detail) + "\n";
        const auto store = st_->reg.store_status();
        if (store.current == registry::store_condition::state::failed) {
            respond(http::status::service_unavailable,
                    "unavailable: store failed: " + store.problem +
                        "; the registry takes no more changes; restart registryd\n" + store_line,
                    keep_alive);
        } else if (store.current == registry::store_condition::state::unreachable) {
            respond(http::status::service_unavailable,
                    "unavailable: store unreachable: " + store.problem + "\n" + store_line, keep_alive);
        } else if (!health.reachable) {
            respond(http::status::service_unavailable, "unavailable: " + health.why + "\n" + store_line, keep_alive);
        } else {
            respond(http::status::ok, "ok\n" + store_line, keep_alive);
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
    // The socket (and its TLS state) moves to the WebSocket session; this
    // session ends.
    error_code ec;
    ws_socket socket = adopt_socket(st_->ioc, stream_.release_socket(), ec);
    if (ec) {
        log::debug("websocket handshake failed", {{"conn", id_}, {"remote", remote_}, {"error", ec.message()}});
        return;
    }
    if (tls_) {
        tls_->timer.cancel();
        st_->tls_channels.insert_or_assign(id_, std::move(tls_->channel));
    }
    auto ws = std::make_shared<ws_session>(st_, id_, std::move(socket), remote_, std::move(slot_),
                                           std::get<access::gate::caller>(std::move(admitted)));
    if (st_->relay) {
        // The writer authenticates the client again: only a token can be passed on.
        const auto& req = parser_->get();
        auto token = access::presented_token(req[http::field::authorization], req.target());
        if (token || !st_->gate.enabled()) ws->relay_writes(token.value_or(std::string()));
    }
    const auto early = buffer_.data();
    ws->run(answer_upgrade(parser_->release()),
            std::string_view(static_cast<const char*>(early.data()), early.size()));
}

// A member's engine, for the writer (cluster/engine_offer.hpp): checked
// here, then the connection is the tunnel's.
void http_session::open_engine_tunnel() {
    const auto& req = parser_->get();
    const std::string_view target = req.target();
    const engine_offer* offer = st_->offered_engines;
    if (st_->shutting_down) {
        respond(http::status::service_unavailable, "shutting down\n", false);
        return;
    }
    if (!offer) {
        respond(http::status::not_found, "this registryd offers no container engines\n", false);
        return;
    }
    if (!proves_cluster_secret(req[http::field::authorization], offer->secret)) {
        log::warn("engine tunnel refused: not the cluster's secret", {{"conn", id_}, {"remote", remote_}});
        respond(http::status::unauthorized, "an engine tunnel needs the cluster's secret\n", false);
        return;
    }
    if (req.method() != http::verb::get || !target.starts_with(engine_tunnel_path)) {
        respond(http::status::bad_request, "an engine tunnel is GET /v1/cluster/engines/<name>\n", false);
        return;
    }
    const std::string_view name = target.substr(engine_tunnel_path.size());
    const auto engine = offer->engines.find(name);
    if (engine == offer->engines.end()) {
        respond(http::status::not_found, "this registryd offers no container engine named '" + std::string(name) + "'\n",
                false);
        return;
    }
    const auto early = buffer_.data();
    std::string pending(static_cast<const char*>(early.data()), early.size());
    buffer_.consume(buffer_.size());
    log::debug("engine tunnel", {{"conn", id_}, {"remote", remote_}, {"engine", engine->first}});
    // Over TLS the end of the engine's stream is a close_notify: an attach
    // stream ends with the connection, and a client tells its end from a cut.
    auto close_self = [self = shared_from_this()] {
        if (self->tls_) self->tls_->channel.close_notify();
        self->close();
    };
    if (tls_) {
        tls_->timer.cancel();
        auto t = std::make_shared<engine_tunnel<tls_stream>>(shared_from_this(), tls_->stream, std::move(close_self),
                                                             engine->first, engine->second, std::move(pending), id_);
        t->start(st_->cfg.timeouts.handshake);
    } else {
        stream_.expires_never();
        auto t = std::make_shared<engine_tunnel<beast::tcp_stream>>(shared_from_this(), stream_, std::move(close_self),
                                                                    engine->first, engine->second, std::move(pending),
                                                                    id_);
        t->start(st_->cfg.timeouts.handshake);
    }
}

// A member's deploy-target call (cluster/target_offer.hpp). Everything
// about it is checked on its header; the body follows under its own bound:
// a run's JSON in memory, an upload's archive into a file.
void http_session::open_target_call() {
    const auto& req = parser_->get();
    if (st_->shutting_down) {
        respond(http::status::service_unavailable, "shutting down\n", false);
        return;
    }
    std::shared_ptr<target_offer> offer = st_->offered_targets;
    if (!offer) {
        respond(http::status::not_found, "this registryd offers no deploy targets\n", false);
        return;
    }
    if (!proves_cluster_secret(req[http::field::authorization], offer->secret())) {
        log::warn("deploy target call refused: not the cluster's secret", {{"conn", id_}, {"remote", remote_}});
        respond(http::status::unauthorized, "a deploy target call needs the cluster's secret\n", false);
        return;
    }
    const std::string_view full = req.target();
    const std::string_view path = full.substr(0, full.find('?'));
    const std::string_view query = full.size() > path.size() ? full.substr(path.size() + 1) : std::string_view{};
    const std::string_view rest = path.substr(target_call_path.size());
    const auto slash = rest.rfind('/');
    // The writer percent-encodes the name (cluster/member_target.cpp).
    const std::string name =
        url_decode(slash == std::string_view::npos ? std::string_view{} : rest.substr(0, slash)).value_or("");
    const std::string operation(slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1));
    registry::deploy_target* target = offer->find(name);
    if (!target) {
        respond(http::status::not_found,
                "this registryd offers no deploy target named '" + std::string(log::clip(name, 128)) + "'\n", false);
        return;
    }
    log::debug("deploy target call", {{"conn", id_}, {"remote", remote_}, {"target", name}, {"operation", operation}});
    if ((operation == "run" || operation == "run_sequence") && req.method() == http::verb::post) {
        parser_->body_limit(max_target_call_bytes);
        expect_within(st_->cfg.timeouts.handshake);
        with_stream([&](auto& stream) {
            http::async_read(stream, buffer_, *parser_,
                             [self = shared_from_this(), offer, target, operation](const error_code& ec, std::size_t) {
                                 if (ec == http::error::body_limit) {
                                     self->respond(http::status::payload_too_large, "request body too large\n", false);
                                 } else if (!ec) {
                                     run_detached(self, self->answered(self->serve_target_call(
                                                                     offer, target, operation,
                                                                     std::move(self->parser_->get().body()))));
                                 }
                             });
        });
        return;
    }
    if (operation == "upload" && req.method() == http::verb::put) {
        std::optional<std::string> to;
        if (query.starts_with("to=")) to = url_decode(query.substr(3));
        if (!to || !to->starts_with('/')) {
            respond(http::status::bad_request, "an upload names where it goes: ?to=<absolute path>\n", false);
            return;
        }
        std::filesystem::path file = offer->incoming();
        upload_parser_.emplace(std::move(*parser_));
        upload_parser_->body_limit(offer->max_upload_bytes());
        error_code opened;
        upload_parser_->get().body().open(file.c_str(), beast::file_mode::write_new, opened);
        if (opened) {
            respond(http::status::internal_server_error,
                    encode_target_error({registry::errc::internal, "cannot store the upload: " + opened.message()}),
                    false, "application/json");
            return;
        }
        // A package may be large; the writer sends it at once.
        expect_within(std::chrono::minutes(10));
        with_stream([&](auto& stream) {
            http::async_read(stream, buffer_, *upload_parser_,
                             [self = shared_from_this(), offer, target, file, to = std::move(*to)](
                                 const error_code& ec, std::size_t) mutable {
                                 self->on_target_upload(ec, std::move(offer), target, std::move(file), std::move(to));
                             });
        });
        return;
    }
    respond(http::status::bad_request,
            "a deploy target call is POST " + std::string(target_call_path) + "<name>/run or /run_sequence, or PUT " +
                std::string(target_call_path) + "<name>/upload?to=<path>\n",
            false);
}

void http_session::on_target_upload(const error_code& ec, std::shared_ptr<target_offer> offer,
                                    registry::deploy_target* target, std::filesystem::path file, std::string to) {
    upload_parser_->get().body().close();
    upload_parser_.reset();
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(file, ignored);
        if (ec == http::error::body_limit) {
            respond(http::status::payload_too_large, "the package is larger than deploy.max_package_bytes\n", false);
        } else {
            log::debug("deploy target upload cut off", {{"conn", id_}, {"remote", remote_}, {"error", ec.message()}});
        }
        return;
    }
    run_detached(shared_from_this(), answered(serve_target_upload(std::move(offer), target, std::move(file), std::move(to))));
}

// What a target call throws is answered (internal) and logged: the writer
// must not wait for an answer that never comes.
registry::task<void> http_session::answered(registry::task<void> work) {
    std::string failure;
    try {
        co_await std::move(work);
        co_return;
    } catch (const std::exception& e) {
        failure = e.what();
    }
    log::warn("deploy target call failed", {{"conn", id_}, {"remote", remote_}, {"error", log::clip(failure)}});
    // Not a braced error here: GCC 12 destroys an aggregate's temporaries twice in a coroutine.
    respond(http::status::internal_server_error,
            encode_target_error(registry::fail(registry::errc::internal, std::move(failure)).err), false,
            "application/json");
}

// The target's own failure is a 500 with its error: the writer's deployer
// sees it as if the target were its own. `offer` keeps the target alive
// until the answer (the standby that made it may be gone by then).
registry::task<void> http_session::serve_target_call(std::shared_ptr<target_offer> offer,
                                                     registry::deploy_target* target, std::string operation,
                                                     std::string body) {
    (void)offer;       // held until the answer
    expect_forever();  // a command runs as long as its own timeout
    if (operation == "run") {
        auto command = decode_target_command(body);
        if (!command) {
            respond(http::status::bad_request, encode_target_error(command.err()), false, "application/json");
            co_return;
        }
        auto ran = co_await target->run(std::move(*command));
        if (ran) {
            respond(http::status::ok, encode_command_result(*ran), false, "application/json");
        } else {
            respond(http::status::internal_server_error, encode_target_error(ran.err()), false, "application/json");
        }
        co_return;
    }
    auto commands = decode_command_sequence(body);
    if (!commands) {
        respond(http::status::bad_request, encode_target_error(commands.err()), false, "application/json");
        co_return;
    }
    auto results = co_await target->run_sequence(std::move(*commands));
    respond(http::status::ok, encode_sequence_results(results), false, "application/json");
}

registry::task<void> http_session::serve_target_upload(std::shared_ptr<target_offer> offer,
                                                       registry::deploy_target* target, std::filesystem::path file,
                                                       std::string to) {
    expect_forever();
    auto uploaded = co_await offer->upload(*target, std::move(file), std::move(to));
    if (uploaded) {
        respond(http::status::no_content, {}, false);
    } else {
        respond(http::status::internal_server_error, encode_target_error(uploaded.err()), false, "application/json");
    }
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
    if (const auto& subject = tls_peer_subject()) c.subject = *subject;  // mutual TLS: the verified certificate's
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
    st_->upgrade_refused(remote_, r.status, r.code, r.message);
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
    res_.emplace(status, request_version_);
    res_->set(http::field::server, server_name);
    res_->set(http::field::content_type, content_type);
    res_->keep_alive(keep_alive);
}

void http_session::finish_response(std::string body) {
    res_->body() = std::move(body);
    res_->prepare_payload();
    writing_ = true;
    with_stream([&](auto& stream) {
        http::async_write(stream, *res_,
                          [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_write(ec); });
    });
}

void http_session::on_write(const error_code& ec) {
    writing_ = false;
    const bool keep_alive = res_->keep_alive();
    res_.reset();
    if (ec) return;
    if (!keep_alive || st_->shutting_down) {
        if (tls_) tls_->channel.close_notify();
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
// destroy the response before the client reads it. (On a TLS connection
// what it sends is discarded undecrypted.)
void http_session::linger() {
    if (tls_) {
        tls_->timer.cancel();
        stream_.expires_after(st_->cfg.timeouts.handshake);
    }
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](const error_code& ec, std::size_t) {
        if (!ec) self->linger();
    });
}

}  // namespace registryd
