#include "cluster/member_target.hpp"

#include "cluster/engine_offer.hpp"
#include "cluster/member_url.hpp"
#include "cluster/target_offer.hpp"
#include "cluster/target_wire.hpp"
#include "deploy/package_packer.hpp"
#include "http/url_encoding.hpp"

#include <unistd.h>

#include <functional>
#include <system_error>
#include <utility>

namespace registryd {

namespace {

// What a refusal's text may add to a message.
constexpr std::size_t max_quoted_answer = 256;

std::string first_line(std::string_view text) {
    text = text.substr(0, text.find('\n'));
    return std::string(text.substr(0, max_quoted_answer));
}

// Made outside the coroutines: GCC 12 destroys the temporaries of an
// aggregate initialisation in a coroutine twice.
http_request request(std::string method, std::string target, std::string body, std::string content_type) {
    http_request r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.body = std::move(body);
    r.content_type = std::move(content_type);
    return r;
}

// A sequence that could not run: its first command's failure.
std::vector<registry::result<registry::command_result>> failed_sequence(registry::error e) {
    return std::vector<registry::result<registry::command_result>>(1, registry::unexpected{std::move(e)});
}

}  // namespace

member_target::member_target(boost::asio::io_context& io, blocking_runner& runner, member_record::target offered,
                             member_target_options options)
    : io_(io), runner_(runner), offered_(std::move(offered)), options_(std::move(options)) {}

registry::result<void> member_target::offered_by(const member_record& member, const member_record::target& offered,
                                                 const std::string& secret) {
    auto at = member_endpoint_of(member.url);
    if (!at) return registry::fail(registry::errc::invalid_request, "member " + member.name + "'s " + at.err().message);
    http_client_options o;
    o.connect_timeout = options_.connect_timeout;
    o.peer_kind = "deploy target " + offered.name + " offered by member " + member.name + " at";
    // A sequence's results: up to 64 commands' capped output.
    o.max_body_bytes = 64u << 20;
    if (at->tls) o.tls = options_.tls;
    offered_ = offered;
    member_ = member.name;
    url_ = member.url;
    secret_ = secret;
    client_ = std::make_shared<engine_http_client>(io_, std::move(at->where), std::move(o));
    return {};
}

void member_target::withdrawn() { client_.reset(); }

registry::location member_target::where() const {
    registry::location l;
    l.remote = true;
    l.host = offered_.host;
    l.ssh_user = offered_.ssh_user;
    l.ssh_port = offered_.ssh_port;
    return l;
}

std::string member_target::path(std::string_view operation) const {
    return std::string(target_call_path) + url_encode(offered_.name) + "/" + std::string(operation);
}

registry::error member_target::not_offered() const {
    return {registry::errc::unavailable, "deploy target " + offered_.name + ": no member of the cluster offers it now"};
}

registry::error member_target::bad_answer(const std::string& why) const {
    return {registry::errc::unavailable,
            "deploy target " + offered_.name + " through member " + member_ + ": its answer: " + why};
}

registry::task<registry::result<http_response>> member_target::call(http_request req,
                                                                    std::chrono::milliseconds timeout) {
    // Held for the call: the member may move (a new client) meanwhile.
    std::shared_ptr<engine_http_client> client = client_;
    if (!client) co_return registry::unexpected{not_offered()};
    req.authorization = cluster_authorization(secret_);
    co_return co_await client->request(std::move(req), {}, timeout);
}

registry::error member_target::failure_of(const http_response& answer) const {
    if (answer.content_type.starts_with("application/json")) {
        if (auto e = decode_target_error(answer.body)) return std::move(*e);
    }
    return {registry::errc::unavailable, "deploy target " + offered_.name + " through member " + member_ + ": " +
                                             std::to_string(answer.status) + " " + first_line(answer.body)};
}

registry::task<registry::result<registry::command_result>> member_target::run(registry::target_command command) {
    const auto timeout = command.timeout + options_.answer_margin;
    http_request req = request("POST", path("run"), encode_target_command(command), "application/json");
    auto answer = co_await call(std::move(req), timeout);
    if (!answer) co_return registry::unexpected{answer.err()};
    if (answer->status != 200) co_return registry::unexpected{failure_of(*answer)};
    auto result = decode_command_result(answer->body);
    if (!result) co_return registry::unexpected{bad_answer(result.err().message)};
    co_return result;
}

registry::task<std::vector<registry::result<registry::command_result>>> member_target::run_sequence(
    std::vector<registry::sequenced_command> commands) {
    auto timeout = options_.answer_margin;
    for (const auto& c : commands) timeout += c.command.timeout;
    http_request req = request("POST", path("run_sequence"), encode_command_sequence(commands), "application/json");
    auto answer = co_await call(std::move(req), timeout);
    if (!answer) co_return failed_sequence(answer.err());
    if (answer->status != 200) co_return failed_sequence(failure_of(*answer));
    auto results = decode_sequence_results(answer->body);
    if (!results) co_return failed_sequence(bad_answer(results.err().message));
    co_return std::move(*results);
}

// Not a coroutine: the job captures its arguments outside any coroutine
// frame (GCC 12 mishandles captures of a coroutine's parameters).
registry::task<registry::result<void>> member_target::pack(std::filesystem::path from, std::filesystem::path to) {
    std::function<registry::result<void>()> job = [from = std::move(from), to = std::move(to)] {
        std::error_code ec;
        std::filesystem::create_directories(to.parent_path(), ec);
        return pack_directory(from, to);
    };
    return runner_.run(std::move(job));
}

registry::task<registry::result<void>> member_target::upload(std::filesystem::path from, std::string to) {
    if (!client_) co_return registry::unexpected{not_offered()};  // before packing for nothing
    const std::filesystem::path packed =
        options_.work_dir / ("member-upload-" + std::to_string(::getpid()) + "-" + std::to_string(++uploads_) + ".tar.gz");
    auto made = co_await pack(from, packed);
    if (!made) co_return made;
    http_request req = request("PUT", path("upload") + "?to=" + url_encode(to), {}, "application/gzip");
    req.body_file = packed;
    auto answer = co_await call(std::move(req), options_.upload_timeout);
    std::error_code ignored;
    std::filesystem::remove(packed, ignored);
    if (!answer) co_return registry::unexpected{answer.err()};
    if (answer->status != 204 && answer->status != 200) co_return registry::unexpected{failure_of(*answer)};
    co_return registry::result<void>{};
}

}  // namespace registryd
