// A deploy target another member of the cluster offers (cluster/target_offer.hpp),
// as the writer's deployer sees it: each operation is an HTTP request to
// that member, which runs it on the target and answers with its result
// (cluster/target_wire.hpp). An upload sends the unpacked package packed
// again (.tar.gz, streamed from a file: memory does not grow with it); the
// member unpacks it with the same checks as any package.
//
// The object lives as long as the deployer (which holds it): when its
// member leaves, its operations fail as unavailable (as an SSH host that
// does not answer), and when the member comes back, here or elsewhere,
// they go to it again.
#pragma once

#include "cluster/member_directory.hpp"
#include "engine/engine_http.hpp"
#include "runtime/blocking_runner.hpp"

#include <registry/ports/deploy_target.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace registryd {

struct member_target_options {
    std::shared_ptr<boost::asio::ssl::context> tls;  // verifies a wss:// member
    std::filesystem::path work_dir;                  // where an upload is packed
    std::chrono::milliseconds connect_timeout{5000};
    // On top of a command's own timeout: the member's answer may take that long.
    std::chrono::milliseconds answer_margin{10000};
    std::chrono::milliseconds upload_timeout{std::chrono::minutes(10)};
};

class member_target final : public registry::deploy_target {
public:
    member_target(boost::asio::io_context& io, blocking_runner& runner, member_record::target offered,
                  member_target_options options);

    // The member offering it now (its name, URL and the cluster's secret).
    // invalid_request when the URL cannot be reached (not ws:// or wss://).
    registry::result<void> offered_by(const member_record& member, const member_record::target& offered,
                                      const std::string& secret);
    // Its member left: operations fail as unavailable until one offers it again.
    void withdrawn();
    const std::string& member() const noexcept { return member_; }
    const std::string& url() const noexcept { return url_; }
    bool offered() const noexcept { return client_ != nullptr; }

    const std::string& name() const override { return offered_.name; }
    registry::location where() const override;
    std::string endpoint_address() const override { return offered_.endpoint_address; }
    std::string prefix() const override { return offered_.prefix; }

    registry::task<registry::result<registry::command_result>> run(registry::target_command command) override;
    registry::task<std::vector<registry::result<registry::command_result>>> run_sequence(
        std::vector<registry::sequenced_command> commands) override;
    registry::task<registry::result<void>> upload(std::filesystem::path from, std::string to) override;

private:
    // Sends `req` to the member within `timeout`: its answer, or the
    // member's refusal / the transport's failure as unavailable.
    registry::task<registry::result<http_response>> call(http_request req, std::chrono::milliseconds timeout);
    // The target's error a non-200 answer carries, else unavailable naming the answer.
    registry::error failure_of(const http_response& answer) const;
    std::string path(std::string_view operation) const;
    // Built outside the coroutines (GCC 12 and braced temporaries in them).
    registry::error not_offered() const;
    registry::error bad_answer(const std::string& why) const;
    // The unpacked package at `from` as a .tar.gz at `to`, off the event loop.
    registry::task<registry::result<void>> pack(std::filesystem::path from, std::filesystem::path to);

    boost::asio::io_context& io_;
    blocking_runner& runner_;
    member_record::target offered_;
    member_target_options options_;
    std::string member_;
    std::string url_;  // the member's
    std::string secret_;
    std::shared_ptr<engine_http_client> client_;  // null while no member offers it
    std::uint64_t uploads_ = 0;
};

}  // namespace registryd
