// The local deploy target: packages installed on registryd's own host,
// under deploy.prefix. Commands and copies run on blocking_runner threads.
// Package scripts run as the script user (deploy.run_as, script_user.hpp),
// and the package's files are given to it; the deployer's own commands run
// as registryd. Without a usable script user every operation is refused.
#pragma once

#include "runtime/blocking_runner.hpp"

#include <registry/ports/deploy_target.hpp>

#include <string>

namespace registryd {

class local_target final : public registry::deploy_target {
public:
    // `name`: "local", or on etcd "local." and the member's name (requests
    // still say "local": deployer::add_alias).
    local_target(blocking_runner& runner, std::string prefix, std::string run_as, std::string name = "local");

    const std::string& name() const override { return name_; }
    registry::location where() const override { return {}; }
    std::string endpoint_address() const override { return "127.0.0.1"; }
    std::string prefix() const override { return prefix_; }

    registry::task<registry::result<registry::command_result>> run(registry::target_command command) override;
    registry::task<registry::result<void>> upload(std::filesystem::path from, std::string to) override;

private:
    blocking_runner& runner_;
    std::string name_;
    std::string prefix_;
    std::string run_as_;
};

}  // namespace registryd
