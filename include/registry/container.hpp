// Containers as the registry sees them: what to run (container_spec), what an
// engine reports back (container_info, container_summary), and the pieces of
// the streams an engine produces (output_chunk, pull_progress).
//
// Plain values, free of any transport: the container_engine port
// (ports/container_engine.hpp) speaks in these, and an embedder maps them onto
// its engine (registryd: the Docker Engine API, served by Docker and Podman).
#pragma once

#include <registry/ports/clock.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry {

// Resource limits. An empty optional leaves the engine's default (unlimited).
struct container_limits {
    std::optional<std::uint64_t> memory_bytes;  // hard memory limit (Docker: HostConfig.Memory)
    std::optional<double> cpus;                 // CPU share, 0.5 = half a core (Docker: NanoCpus)
    std::optional<std::int64_t> pids;           // process count limit (Docker: PidsLimit)

    friend bool operator==(const container_limits&, const container_limits&) = default;
};

enum class container_network {
    none,     // no network at all, only loopback
    default_  // the engine's default network (Docker and Podman: a bridge with outbound access)
};

std::string_view to_string(container_network n) noexcept;

struct container_spec {
    std::string name;                          // empty: the engine picks one
    std::string image;                         // a reference: "localhost/app:1", "busybox@sha256:..."
    std::vector<std::string> command;          // empty: the image's default command
    std::map<std::string, std::string> env;
    std::map<std::string, std::string> labels;  // lease bookkeeping lives here (see container_engine)
    container_limits limits;
    container_network network = container_network::none;
    bool read_only_rootfs = false;
    // Hardening for untrusted code (the REPL executor).
    std::string user;                               // "uid:gid" or a name; empty: the image's user
    std::map<std::string, std::string> tmpfs;       // mount point → options ("rw,size=64m,mode=1777")
    bool drop_all_capabilities = false;
    bool no_new_privileges = false;
};

enum class container_status { created, running, paused, restarting, removing, exited, dead, unknown };

constexpr std::string_view to_string(container_status s) noexcept {
    switch (s) {
        case container_status::created: return "created";
        case container_status::running: return "running";
        case container_status::paused: return "paused";
        case container_status::restarting: return "restarting";
        case container_status::removing: return "removing";
        case container_status::exited: return "exited";
        case container_status::dead: return "dead";
        case container_status::unknown: return "unknown";
    }
    return "unknown";
}

struct container_state {
    container_status status = container_status::unknown;
    bool running = false;
    int exit_code = 0;  // meaningful once exited
    bool oom_killed = false;
    std::string error;  // the engine's error starting/running it, usually empty
    std::optional<time_point> started_at;   // nullopt: never started
    std::optional<time_point> finished_at;  // nullopt: has not finished
};

// What inspect reports: the container as the engine actually configured it.
struct container_info {
    std::string id;
    std::string name;
    std::string image;  // the reference it was created from
    std::vector<std::string> command;
    std::map<std::string, std::string> env;  // including what the engine and image add (PATH, HOSTNAME...)
    std::map<std::string, std::string> labels;
    std::optional<time_point> created;
    container_state state;
    container_limits limits;
    std::string network_mode;  // as the engine names it: "none", "bridge", "default", ...
    bool read_only_rootfs = false;
    // Its address on the engine's default network (a deployed container
    // package's endpoints); empty without a network or when not running.
    std::string ip_address{};
};

// One entry of a listing (cheaper than inspect).
struct container_summary {
    std::string id;
    std::string name;
    std::string image;
    std::map<std::string, std::string> labels;
    container_status status = container_status::unknown;
    std::string status_text;  // the engine's words: "Exited (3) 7 seconds ago"
    std::optional<time_point> created;
};

// Label selector for listing: every term must match. A term without a value
// matches containers that have the label at all.
struct label_selector {
    struct term {
        std::string key;
        std::optional<std::string> value;
    };
    std::vector<term> terms;

    label_selector& has(std::string key) {
        terms.push_back({std::move(key), std::nullopt});
        return *this;
    }
    label_selector& equals(std::string key, std::string value) {
        terms.push_back({std::move(key), std::move(value)});
        return *this;
    }
};

// Which of a container's output streams a chunk came from. Containers run
// without a TTY, so the engine keeps the two apart.
enum class output_stream : std::uint8_t { out = 1, err = 2 };

constexpr std::string_view to_string(output_stream s) noexcept { return s == output_stream::err ? "stderr" : "stdout"; }

// A piece of a container's output, as the engine framed it (usually one
// write, often one line; never merged across streams).
struct output_chunk {
    output_stream stream = output_stream::out;
    std::string bytes;
};

struct log_options {
    std::optional<std::size_t> tail;  // only the last N lines; nullopt: everything
    bool follow = false;              // keep streaming until the container stops
    bool want_stdout = true;
    bool want_stderr = true;
};

// One progress line of an image pull.
struct pull_progress {
    std::string id;        // layer or image id, may be empty
    std::string status;    // "Pulling fs layer", "Downloading", "Download complete", ...
    std::string progress;  // the engine's progress bar, may be empty
    std::optional<std::uint64_t> current;
    std::optional<std::uint64_t> total;
};

// A file for put_archive. The path is relative to the destination directory
// and may contain subdirectories ("conf/app.yaml"); missing parents are
// created (mode 0755).
struct archive_file {
    std::string path;
    std::string contents;
    std::uint32_t mode = 0644;
};

// What an engine says about itself (heartbeat, node listing).
struct engine_info {
    std::string name;         // "Docker Engine", "Podman Engine", ...
    std::string version;      // the engine's own version
    std::string api_version;  // the Docker API version it serves
    std::string os;
    std::string arch;
};

}  // namespace registry
