// The `repl` section of registryd's configuration: whether REPL executions
// run (on the engines of the `containers` section), how many at once, and
// the languages (registryd.example.yaml documents every key). Off, the
// repl_* actions answer `unavailable`.
#pragma once

#include <registry/repl/language.hpp>
#include <registry/repl/result_store.hpp>

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
    bool enabled = false;
    std::size_t max_concurrent = 4;  // per engine
    std::size_t max_queue = 64;
    std::size_t max_concurrent_per_identity = 8;  // queued or running; non-admin identities (0: no such quota)
    std::chrono::seconds idempotency_window{600};
    std::chrono::seconds warm_max_age{600};
    std::chrono::seconds lease_grace{60};
    std::string user = "65534:65534";
    std::vector<registry::repl::language> languages;
    // Finished executions kept for repl_result and repl_history: result_retention_seconds, max_results,
    // max_result_bytes, max_results_per_identity, max_result_bytes_per_identity.
    registry::repl::result_store_options results;
};

// Applies the `repl` mapping of a configuration file. Throws config_error
// naming the key path (e.g. "repl.languages[1].maximum.pids").
void read_repl_section(repl_config& out, const YAML::Node& section, std::string_view origin);

}  // namespace registryd
