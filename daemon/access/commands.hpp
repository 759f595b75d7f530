// registryd's access subcommands, which exit at once:
//   registryd token new --name NAME --role ROLE [--services PATTERN...]
//                       [--tokens-file FILE] [--config FILE]
//   registryd roles [--markdown] [--config FILE]
#pragma once

#include <optional>

namespace registryd::access {

// nullopt: argv names no subcommand (the daemon runs); else its exit status.
std::optional<int> run_command(int argc, const char* const* argv);

}  // namespace registryd::access
