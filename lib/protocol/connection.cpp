#include <registry/protocol/connection.hpp>

#include "loop_context_impl.hpp"
#include "session.hpp"

namespace registry::protocol {

struct connection::impl {
    std::shared_ptr<session> state;
};

connection::connection(server& srv, loop_context& loop, outbox& out, session_id id, std::string source,
                       std::shared_ptr<const principal> caller)
    : impl_(std::make_unique<impl>(impl{std::make_shared<session>(srv, loop.internals().parser, out, id,
                                                                  std::move(source),
                                                                  caller ? std::move(caller) : principal::anonymous())})) {}

connection::~connection() { close(); }

task<outcome> connection::handle(std::string_view text) { return session::handle(impl_->state, text); }

outcome connection::reject(errc code, std::string message) { return impl_->state->reject(code, std::move(message)); }

void connection::close() { impl_->state->close(); }

void connection::relay_through(relay& r) noexcept { impl_->state->relay_through(r); }

std::size_t connection::subscription_count() const noexcept { return impl_->state->subscription_count(); }

}  // namespace registry::protocol
