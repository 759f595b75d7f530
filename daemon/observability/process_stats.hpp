// The process figures Prometheus' standard process collector exports
// (process_cpu_seconds_total, process_resident_memory_bytes, ...), read from
// /proc/self at scrape time: nothing to keep up to date in between.
#pragma once

#include <cstdint>
#include <optional>

namespace registryd {

struct process_stats {
    double cpu_seconds = 0;            // user + system
    std::uint64_t resident_bytes = 0;
    std::uint64_t virtual_bytes = 0;
    double start_time_seconds = 0;     // since the Unix epoch
    std::uint64_t open_fds = 0;
    std::uint64_t max_fds = 0;         // the soft RLIMIT_NOFILE
};

// nullopt when /proc/self/stat cannot be read (no procfs).
std::optional<process_stats> read_process_stats();

}  // namespace registryd
