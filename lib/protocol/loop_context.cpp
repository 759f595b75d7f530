#include <registry/protocol/loop_context.hpp>

#include "loop_context_impl.hpp"

namespace registry::protocol {

loop_context::loop_context() : impl_(std::make_unique<impl>()) {}
loop_context::~loop_context() = default;

loop_context::impl& loop_context::internals() noexcept { return *impl_; }

}  // namespace registry::protocol
