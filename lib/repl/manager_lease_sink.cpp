#include <registry/repl/manager_lease_sink.hpp>

namespace registry::repl {

bool manager_lease_sink::online(std::string_view engine) const { return manager_.online(engine); }

std::map<std::string, std::string> manager_lease_sink::lease_labels(time_point deadline) const {
    return manager_.hold_labels(lease_holder, deadline);
}

task<result<void>> manager_lease_sink::container_created(std::string_view engine, std::string_view container_id,
                                                         time_point deadline) {
    co_return manager_.hold(engine, container_id, deadline);
}

task<void> manager_lease_sink::container_removed(std::string_view engine, std::string_view container_id) {
    manager_.release(engine, container_id);
    co_return;
}

}  // namespace registry::repl
