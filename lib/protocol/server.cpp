#include "server_impl.hpp"

#include "event_encoder.hpp"
#include "services/actions.hpp"

namespace registry::protocol {

// The services module, and every optional subsystem's actions as absent
// until the embedder registers the subsystem (protocol/containers.hpp,
// deploy.hpp, repl.hpp).
server::impl::impl(class registry& r, struct limits l)
    : reg(r), lims(l), listings(l.max_open_listings, l.max_open_listings_per_connection), rates(l.rates) {
    reg.set_event_encoder(&event_body);
    own(add_services_actions(actions, &reg, &listings, &lims));
    using enum permission_family;
    constexpr std::string_view no_containers = "no container engine is configured on this server";
    actions.add_absent({"container_create", "container_stop", "container_remove", "container_extend", "image_pull",
                        "container_cancel_queued"},
                       containers_write, no_containers);
    actions.add_absent({"container_list", "container_get", "container_logs", "list_nodes"}, containers_read,
                       no_containers);
    actions.add_absent({"deploy_package", "service_action", "undeploy"}, deploy,
                       "deployment is not enabled on this server");
    actions.add_absent({"package_upload_begin", "package_upload_chunk", "package_upload_status"}, deploy,
                       "package uploads are not enabled on this server");
    actions.add_absent({"repl_languages", "repl_result", "repl_history"}, repl_read,
                       "REPL execution is not enabled on this server (repl.enabled)");
    actions.add_absent({"repl_execute", "repl_cancel"}, repl,
                       "REPL execution is not enabled on this server (repl.enabled)");
}

server::server(class registry& reg, limits lim) : impl_(std::make_unique<impl>(reg, lim)) {}
server::~server() = default;

registry& server::reg() noexcept { return impl_->reg; }
const limits& server::lims() const noexcept { return impl_->lims; }
std::optional<permission_family> server::family_of(std::string_view action) const noexcept {
    if (const action_entry* e = impl_->actions.find(action)) return e->family;
    return std::nullopt;
}
server::impl& server::internals() noexcept { return *impl_; }

void server::serve_replica() {
    impl_->actions.answer_absent(errc::not_writer,
                                 "this registryd is a standby: it serves the registry's reads and subscriptions; "
                                 "containers, deployments and REPL executions are run by the writer");
    impl_->actions.relay_all_but(permission_family::discover);
}

}  // namespace registry::protocol
