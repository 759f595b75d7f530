// The `repl` section of registryd's configuration: which engine runs REPL
// executions, how many at once, and the languages (registryd.example.yaml
// documents every key). Without an engine, the repl_* actions answer
// `unavailable`.
#pragma once

#include <registry/repl/language.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace YAML {
class Node;
}

namespace registryd {

struct repl_config {
    std::string engine;  // "unix:///run/podman/podman.sock", "tcp://host:port"; empty: off
    std::string owner = "registryd";
    std::size_t max_concurrent = 4;
    std::size_t max_queue = 64;
    std::chrono::seconds idempotency_window{600};
    std::chrono::seconds warm_max_age{600};
    std::string user = "65534:65534";
    std::vector<registry::repl::language> languages;
};

// Applies the `repl` mapping of a configuration file. Throws config_error
// naming the key path (e.g. "repl.languages[1].maximum.pids").
void read_repl_section(repl_config& out, const YAML::Node& section, std::string_view origin);

}  // namespace registryd
