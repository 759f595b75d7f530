// A language the REPL executor runs: where its image is, how a program is
// compiled and run, and the limits an execution gets by default and may ask
// for at most. Languages come from the embedder's configuration (registryd:
// the `repl.languages` YAML list): adding one is a configuration change.
//
// A language may come in several versions (python 3.11 and 3.12, c by gcc and
// by clang): one `language` per version, sharing the name, with distinct
// versions. The first of a name is its default version, the one a request
// that names no version gets; the executor keeps the embedder's order.
#pragma once

#include <registry/ports/clock.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace registry::repl {

// What an execution may use. Timeout and output are enforced by the executor
// (kill), the rest by the engine (cgroups, network mode).
struct limits {
    milliseconds timeout{10'000};           // wall clock, from start to exit
    std::uint64_t output_bytes = 1 << 20;   // stdout + stderr together
    std::uint64_t memory_bytes = 256 << 20;
    std::int64_t pids = 64;                 // processes and threads
    std::uint32_t cpu_millicores = 1000;    // 1000: one core
    bool network = false;                   // false: no network at all, only loopback

    friend bool operator==(const limits&, const limits&) = default;
};

// What a request may ask for; an absent field takes the language's default.
struct limit_overrides {
    std::optional<milliseconds> timeout;
    std::optional<std::uint64_t> output_bytes;
    std::optional<std::uint64_t> memory_bytes;
    std::optional<std::int64_t> pids;
    std::optional<std::uint32_t> cpu_millicores;
    std::optional<bool> network;
};

struct language {
    std::string name;         // the request's `language`: "python"
    std::string version;      // "3.11"; a request may name it (unique among those of the name)
    std::string image;        // a local image reference: "localhost/registry-python:latest"
    std::string source_file;  // the file name `code` is stored under: "main.py"
    // argv, "{source}" replaced by the entry point's file name. No compile:
    // the program runs directly. A failed compile (non-zero exit) does not run.
    std::vector<std::string> compile;
    std::vector<std::string> run;  // the request's `args` are appended
    limits defaults;
    limits maximum;
    std::size_t warm_pool = 0;  // containers kept created ahead, per engine
};

}  // namespace registry::repl
