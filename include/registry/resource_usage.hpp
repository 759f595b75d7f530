// What a container used: one sample of its engine's figures
// (container_engine::stats), and the usage of a run folded from such samples
// (a REPL execution's, a managed container's).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

namespace registry {

// One sample of a container's cgroup figures as its engine reports them; a
// figure the engine does not report is absent, and a container that is not
// running has none (its cgroup is gone).
struct container_stats {
    std::optional<std::uint64_t> cpu_ns;        // CPU time of all its processes since it started
    std::optional<std::uint64_t> memory_bytes;  // memory charged to it now (page cache and tmpfs files included)
    // The highest memory_bytes has been since it started, where the engine
    // reports it (Docker on cgroup v1: max_usage); Podman 4.3 does not.
    std::optional<std::uint64_t> memory_max_bytes;

    friend bool operator==(const container_stats&, const container_stats&) = default;
};

// A run's CPU time and peak memory, from the samples taken while it ran.
struct resource_usage {
    std::optional<std::uint64_t> cpu_ms;
    // The engine's own maximum where it has one, else the highest memory
    // sample: a spike between two samples may be missed.
    std::optional<std::uint64_t> memory_peak_bytes;

    bool empty() const noexcept { return !cpu_ms && !memory_peak_bytes; }

    // A later sample: CPU time is cumulative (the latest counts), memory the highest seen.
    void add(const container_stats& s) noexcept {
        if (s.cpu_ns) cpu_ms = std::max(cpu_ms.value_or(0), *s.cpu_ns / 1'000'000);
        for (const auto& m : {s.memory_bytes, s.memory_max_bytes}) {
            if (m) memory_peak_bytes = std::max(memory_peak_bytes.value_or(0), *m);
        }
    }

    friend bool operator==(const resource_usage&, const resource_usage&) = default;
};

}  // namespace registry
