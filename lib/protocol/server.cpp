#include "server_impl.hpp"

namespace registry::protocol {

server::server(registry& reg, limits lim, container_manager* containers)
    : impl_(std::make_unique<impl>(reg, lim, containers)) {}
server::~server() = default;

registry& server::reg() noexcept { return impl_->reg; }
container_manager* server::containers() noexcept { return impl_->containers; }
const limits& server::lims() const noexcept { return impl_->lims; }
server::impl& server::internals() noexcept { return *impl_; }
void server::attach(deploy::deployer& d) noexcept { impl_->deployer = &d; }
void server::attach(deploy::package_uploads& u) noexcept { impl_->uploads = &u; }
void server::set_repl(repl::executor* executor) noexcept { impl_->repl = executor; }
repl::executor* server::repl() noexcept { return impl_->repl; }

}  // namespace registry::protocol
