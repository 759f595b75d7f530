// The deployment_* events a deploy publishes, and the log line of each
// deploy and undeploy.
#include "deploy/deployer_impl.hpp"

namespace registry::deploy {

// Publishes a deployment_* event (best effort: a store that fails has
// failed the deploy already).
task<void> deployer::impl::publish(event_type type, const course& c, std::optional<error> failure) {
    auto e = std::make_shared<event>();
    e->type = type;
    e->deployment = std::make_shared<const deployment_change>(c.change);
    e->failure = std::move(failure);
    std::vector<std::shared_ptr<event>> events{std::move(e)};
    std::vector<store_mutation> none;
    auto r = co_await reg.record(std::move(events), std::move(none), "deployment event");
    (void)r;
}

task<void> deployer::impl::entered(course& c, const progress& p) {
    c.change.stage = std::string(to_string(p.at));
    c.change.message = p.message;
    if (c.started) co_await publish(event_type::deployment_stage, c);
}

void deployer::impl::log_outcome(const course& c, std::string operation, const result<void>& r, std::string message) const {
    if (!opts.log) return;
    operation_record o;
    o.operation = std::move(operation);
    o.outcome = r ? "succeeded" : c.rolled_back ? "rolled_back" : "failed";
    o.instance_id = c.change.instance_id;
    o.package = c.change.package;
    o.version = c.change.to_version;
    o.from_version = c.change.from_version;
    o.target = c.change.target;
    o.message = r ? std::move(message) : r.err().message;
    if (!r) o.error = r.err().code;
    opts.log(o);
}

}  // namespace registry::deploy
