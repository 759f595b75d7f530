// The deployer's public entry points (include/registry/deploy/deployer.hpp);
// the work is deployer::impl's (deployer_impl.hpp).
#include "deploy/deploy_names.hpp"
#include "deploy/deployer_impl.hpp"

#include <registry/deploy/deployer.hpp>

namespace registry::deploy {

std::string_view to_string(stage s) noexcept {
    const std::string_view name = detail::name_of(s);
    return name.empty() ? "failed" : name;
}


deployer::deployer(class registry& reg, clock& clk, store& st, package_unpacker& unpacker, deployer_options options)
    : impl_(std::make_unique<impl>(reg, clk, st, unpacker, std::move(options))) {}

task<result<std::size_t>> deployer::open() { return impl_->open(); }

task<result<std::size_t>> deployer::adopt_target(deploy_target& target) { return impl_->adopt_target(target); }

deployer::~deployer() = default;

void deployer::add_target(deploy_target& target) { impl_->targets[target.name()] = &target; }

void deployer::add_alias(std::string alias, deploy_target& target) { impl_->aliases[std::move(alias)] = &target; }

bool deployer::has_target(std::string_view name) const {
    return impl_->targets.find(name) != impl_->targets.end() || impl_->aliases.find(name) != impl_->aliases.end() ||
           (impl_->containers && name == impl::container_target);
}

void deployer::use_containers(package_containers& containers, health_prober* prober) {
    impl_->containers = &containers;
    impl_->prober = prober;
}

task<result<deploy_outcome>> deployer::deploy(deploy_request request, progress_sink report) {
    if (!report) report = [](const progress&) {};
    if (auto alias = impl_->aliases.find(request.target); alias != impl_->aliases.end()) {
        request.target = alias->second->name();
    }
    return impl_->deploy(std::move(request), std::move(report));
}

task<result<service_ptr>> deployer::control(std::string instance_id, service_command command, progress_sink report,
                                            const identity& by) {
    if (!report) report = [](const progress&) {};
    return impl_->control(std::move(instance_id), command, std::move(report), by);
}

task<result<void>> deployer::undeploy(std::string instance_id, progress_sink report, bool force, const identity& by) {
    if (!report) report = [](const progress&) {};
    return impl_->logged_undeploy(std::move(instance_id), std::move(report), force, by);
}

task<void> deployer::shutdown() {
    for (auto& [id, at] : impl_->installs) impl::stop_health_loop(*at);
    co_await impl_->health_loops.join();
}

}  // namespace registry::deploy
