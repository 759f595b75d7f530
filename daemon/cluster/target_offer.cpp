#include "cluster/target_offer.hpp"

#include "observability/log.hpp"

#include <limits>
#include <system_error>
#include <utility>

namespace registryd {

namespace {

std::filesystem::path uploads_dir(const config& cfg) {
    return deploy_work_dir(cfg) / "member-uploads";
}

}  // namespace

std::vector<member_record::target> offered_targets(const config& cfg, std::string_view member,
                                                   std::string_view advertised_host) {
    std::vector<member_record::target> out;
    member_record::target local;
    local.name = "local." + std::string(member);
    local.endpoint_address = std::string(advertised_host);
    local.prefix = cfg.deploy.prefix;
    local.host = std::string(advertised_host);
    out.push_back(std::move(local));
    for (const auto& h : cfg.deploy.remote_hosts) {
        member_record::target t;
        t.name = h.name;
        t.endpoint_address = h.endpoint_address.empty() ? h.host : h.endpoint_address;
        t.prefix = h.prefix;
        t.host = h.host;
        t.ssh_user = h.user;
        t.ssh_port = h.port;
        out.push_back(std::move(t));
    }
    return out;
}

target_offer::target_offer(boost::asio::io_context& io, const config& cfg, std::string_view member,
                           std::string secret)
    : secret_(std::move(secret)),
      runner_(io),
      unpacker_(runner_, {}),
      work_dir_(uploads_dir(cfg)),
      local_(runner_, cfg.deploy.prefix, cfg.deploy.run_as, "local." + std::string(member)) {
    limits_.max_total_bytes = cfg.deploy.max_package_bytes;
    // No ratio check: the writer packed what it unpacked within the same
    // limits, and its gzip may well compress better than the client's did.
    // The unpacked total stays bounded.
    limits_.max_ratio = std::numeric_limits<std::uint64_t>::max();
    // What an earlier run left is nobody's: uploads do not outlive a call.
    std::error_code ec;
    std::filesystem::remove_all(work_dir_, ec);
    std::filesystem::create_directories(work_dir_, ec);
    if (ec) log::warn("cannot make the directory for the writer's uploads", {{"dir", work_dir_.string()}, {"error", ec.message()}});
    targets_.emplace(local_.name(), &local_);
    for (auto host : cfg.deploy.remote_hosts) {
        if (host.run_as.empty()) host.run_as = cfg.deploy.run_as;
        remote_.push_back(std::make_unique<ssh_target>(io, std::move(host)));
        targets_.emplace(remote_.back()->name(), remote_.back().get());
    }
}

registry::deploy_target* target_offer::find(std::string_view name) const {
    const auto it = targets_.find(name);
    return it == targets_.end() ? nullptr : it->second;
}

std::filesystem::path target_offer::incoming() { return work_dir_ / ("upload-" + std::to_string(++uploads_) + ".tar.gz"); }

registry::task<registry::result<void>> target_offer::upload(registry::deploy_target& target,
                                                            std::filesystem::path archive, std::string to) {
    registry::deploy::unpack_request req;
    req.archive = archive;
    req.staging = std::filesystem::path(archive).replace_extension().replace_extension(".d");
    req.limits = limits_;
    auto unpacked = co_await unpacker_.unpack(req);
    std::error_code ec;
    std::filesystem::remove(archive, ec);
    if (!unpacked) co_return registry::unexpected{unpacked.err()};
    auto uploaded = co_await target.upload(req.staging, std::move(to));
    unpacker_.discard(req.staging);
    co_return uploaded;
}

}  // namespace registryd
