// The REPL executor's containers as containers the container manager holds
// (container_manager::hold): on the manager's nodes, under leases its reaper
// enforces, adopted from their labels after a restart. They stay out of the
// manager's list and events.
#pragma once

#include <registry/container_manager.hpp>
#include <registry/repl/lease_sink.hpp>

namespace registry::repl {

// The holder label's value on REPL containers.
inline constexpr std::string_view lease_holder = "repl";

class manager_lease_sink final : public lease_sink {
public:
    explicit manager_lease_sink(container_manager& manager) : manager_(manager) {}

    bool online(std::string_view engine) const override;
    std::map<std::string, std::string> lease_labels(time_point deadline) const override;
    task<result<void>> container_created(std::string_view engine, std::string_view container_id,
                                         time_point deadline) override;
    task<void> container_removed(std::string_view engine, std::string_view container_id) override;

private:
    container_manager& manager_;
};

}  // namespace registry::repl
