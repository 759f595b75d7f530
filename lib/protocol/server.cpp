#include "server_impl.hpp"

namespace registry::protocol {

server::server(registry& reg, limits lim) : impl_(std::make_unique<impl>(reg, lim)) {}
server::~server() = default;

registry& server::reg() noexcept { return impl_->reg; }
const limits& server::lims() const noexcept { return impl_->lims; }
server::impl& server::internals() noexcept { return *impl_; }
void server::set_repl(repl::executor* executor) noexcept { impl_->repl = executor; }
repl::executor* server::repl() noexcept { return impl_->repl; }

}  // namespace registry::protocol
