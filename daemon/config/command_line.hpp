// registryd's command line: the flags that override the configuration
// file, --help's text, and the modes that exit at once (--help, --version,
// --check-config).
#pragma once

#include "config/config.hpp"
#include "observability/log.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace registryd {

struct command_line {
    std::optional<std::filesystem::path> config_file;
    std::optional<listen_address> listen;
    std::optional<std::filesystem::path> data_dir;
    std::optional<std::filesystem::path> port_file;
    std::optional<log::level> log_level;
    bool help = false;
    bool version = false;
    bool check_config = false;  // --check-config FILE: validate config_file and exit
};

// Throws config_error for an unknown flag, a missing or bad value.
command_line parse_command_line(int argc, const char* const* argv);

std::string usage(std::string_view program);

}  // namespace registryd
