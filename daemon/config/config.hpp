// registryd's configuration: defaults, the YAML file, the command line.
//
// Precedence: built-in defaults < --config FILE < command-line flags.
// daemon/registryd.example.yaml documents every key. Unknown keys, wrong
// types and out-of-range values are errors that name the key path (e.g.
// "limits.max_conections: unknown key"); registryd exits 2 on them.
#pragma once

#include "config/access_config.hpp"
#include "config/notifications_config.hpp"
#include "config/repl_config.hpp"
#include "deploy/remote_host.hpp"
#include "deploy/script_user.hpp"
#include "observability/log.hpp"

#include <registry/container_manager.hpp>
#include <registry/protocol/rate_limits.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace registryd {

struct listen_address {
    std::string host = "127.0.0.1";  // IP literal or host name; IPv6 as [::1] on the command line
    std::uint16_t port = 8080;       // 0: an ephemeral port (see --port-file)

    std::string to_string() const;  // "HOST:PORT", IPv6 hosts bracketed
};

struct config {
    listen_address listen;
    std::filesystem::path data_dir = "./registry-data";

    struct log_section {
        log::level level = log::level::info;
        std::size_t repeat_burst = 10;  // lines of one warning/error message per window (log::set_repeat_limit)
        std::chrono::seconds repeat_window{10};
    } log;

    struct limits_section {
        std::size_t max_message_bytes = 1 << 20;
        std::size_t max_connections = 10000;
        std::size_t max_inflight_per_connection = 64;
        std::size_t outbound_queue_bytes = 4 << 20;
        std::size_t outbound_queue_messages = 4096;
        std::size_t max_subscriptions_per_connection = 64;
        // What every connection's variable buffers draw from together
        // (websocket/memory_budget.hpp). 0 (unset): default_memory_budget(), settled
        // by load().
        std::uint64_t memory_budget_bytes = 0;
        // Connections that have not completed a WebSocket upgrade (plain
        // HTTP ones included); beyond it the oldest is closed.
        std::size_t max_handshakes = 1024;
        // Connections (upgraded or not) from one source address.
        std::size_t max_connections_per_source = 1000;
    } limits;

    // Per-client quotas (docs/protocol.md, "Limits"), so that a few clients
    // cannot take what the global limits allow for everyone. 0: no quota.
    struct quotas_section {
        std::size_t registrations_per_address = 100000;  // live instances registered from one source address
        std::size_t registrations_per_connection = 10000;
        std::size_t subscriptions_per_address = 1024;    // over every connection from that address
    } quotas;

    // list_services / list_endpoints in pages (docs/protocol.md, "Limits").
    struct listings_section {
        std::size_t max_page_items = 1000;  // also without a limit in the request
        std::size_t max_open = 64;          // listings continued over pages, held in all
        std::size_t max_open_per_connection = 4;
    } listings;

    struct timeouts_section {
        std::chrono::seconds idle{60};
        std::chrono::seconds handshake{10};
        std::chrono::seconds shutdown{10};
    } timeouts;

    struct registry_section {
        std::chrono::seconds default_ttl{30};
        std::chrono::seconds min_ttl{1};
        std::chrono::seconds max_ttl{86400};
        std::chrono::seconds session_grace{10};
        std::size_t history_limit = 10000;
        std::chrono::seconds bookmark_interval{10};
    } registry;

    // Container engines as nodes (registry::container_manager). No engine
    // configured and none accepted from registrations: the container actions
    // answer `unavailable`.
    struct engine_entry {
        std::string name;
        std::string endpoint;  // unix:///path or tcp://host:port
        std::size_t capacity = 8;
    };
    struct containers_section {
        std::string instance_id = "registryd";  // the io.registry.instance label of our containers
        std::vector<engine_entry> engines;
        // Services registering themselves as container engines
        // (registry::registered_engines) become nodes too. Off by default: it
        // lets any client point registryd at an engine of its choice.
        bool accept_registered_engines = false;
        std::chrono::milliseconds heartbeat_interval{2000};
        std::chrono::milliseconds heartbeat_timeout{6000};
        std::chrono::seconds default_ttl{300};
        std::chrono::seconds max_ttl{86400};
        std::chrono::seconds stop_grace{5};
        std::size_t reap_attempts = 3;
        std::chrono::milliseconds reap_backoff{500};
        std::chrono::milliseconds sweep_interval{5000};
        // The create queue (container_create's `queue`).
        std::size_t max_queued = 64;
        std::size_t max_queued_per_identity = 16;
        // Named images for container_create's `preset`.
        std::map<std::string, registry::container_preset, std::less<>> presets;
        // What container_create may ask for (allowed images, limit ceilings).
        registry::container_policy policy;
    } containers;

    struct store_section {
        enum class kind { file, etcd };
        kind type = kind::file;
        // Rewrite the journal into a snapshot once it grows past this
        // (registry::file_store_options::compact_journal_bytes).
        std::uint64_t compact_journal_bytes = 8ull << 20;
        // Reads while the store is unreachable (docs/protocol.md, "Store outages").
        enum class stale_reads_policy { serve, refuse };
        stale_reads_policy stale_reads = stale_reads_policy::serve;
        // kind: etcd (store/etcd_store_port.hpp).
        struct etcd_section {
            std::vector<std::string> endpoints{"http://127.0.0.1:2379"};
            std::string prefix = "/registry/";
            std::chrono::milliseconds dial_timeout{2000};
            std::chrono::milliseconds request_timeout{5000};
            // The writer lease of several registryd on one etcd and prefix
            // (store/etcd_store_port.hpp): a standby takes over at most this
            // long after the writer died.
            std::chrono::seconds writer_lease_ttl{5};
            // The URL the other registryd of the cluster reach this one at when
            // it is the writer (a standby relays its clients' writes there).
            // Empty: ws:// (wss:// with `tls`) and the address it listens on,
            // unless that is a wildcard (0.0.0.0, ::): then standbys answer
            // writes not_writer instead of relaying them.
            std::string advertise_url;
            // false: a standby answers writes not_writer (the clients move to
            // the writer) instead of relaying them.
            bool relay_writes = true;
            // PEM CAs a standby verifies a wss:// writer with, besides the system's
            // (and the writer a member offering engines, cluster/engine_offer.hpp).
            std::filesystem::path relay_ca_file;
            // This registryd's name in the cluster (cluster/member_directory.hpp):
            // one process per name. Empty: the host name.
            std::string member;
            // A standby offers the writer its containers.engines (the writer runs
            // their containers through it, cluster/engine_offer.hpp), and the
            // writer runs containers on what the other registryd offer.
            bool share_engines = true;
            // Likewise its deploy targets: its own host ("local.<member>") and
            // deploy.remote_hosts (cluster/target_offer.hpp).
            bool share_deploy_targets = true;
            // https:// endpoints: store.etcd.tls (store/etcd_tls.hpp); an
            // https endpoint without it verifies etcd with the system's CAs.
            struct tls_section {
                std::string ca_file, cert_file, key_file, server_name;
            } tls;
        } etcd;
    } store;

    // Health checks (docs/protocol.md, "Health checks"): probes in flight at
    // once; CAs https checks trust besides the system's (PEM; empty: none).
    struct health_section {
        std::size_t max_concurrent_probes = 64;
        std::filesystem::path ca_file;
    } health;

    // Package deployment (docs/protocol.md, "Deployment").
    struct deploy_section {
        std::string prefix = "/opt";          // packages go to {prefix}/{name}-{version}/
        std::filesystem::path work_dir;       // unpacking scratch space; empty: {data_dir}/deploy (deploy_work_dir)
        std::chrono::seconds script_timeout{60};
        // The user package scripts run as (locally, and on each remote host
        // without its own run_as): never root unless it says "root".
        std::string run_as = default_script_user;
        std::uint64_t max_package_bytes = 512ull << 20;  // unpacked
        std::vector<remote_host> remote_hosts;           // SSH targets
        // deploy_package's path form: the archive must be inside one of these
        // (after realpath). Empty: the path form is refused (forbidden).
        std::vector<std::filesystem::path> package_dirs;
        // Uploads over the WebSocket (package_upload_*).
        std::uint64_t max_upload_bytes = 512ull << 20;
        // Decoded; as base64 with its envelope it must fit limits.max_message_bytes.
        // 0 (unset): 512 KiB, or the largest chunk that fits (load() settles it).
        std::size_t upload_chunk_bytes = 0;
        std::size_t max_uploads = 16;
        std::size_t max_uploads_per_identity = 4;  // non-admin identities only (0: no such quota)
        std::chrono::seconds upload_idle_timeout{300};
    } deploy;
    repl_config repl;  // REPL execution (config/repl_config.hpp)
    notifications_config notifications;  // webhooks (config/notifications_config.hpp)

    // Rate limits and the audit log (docs/protocol.md, "Rate limits", "Audit log").
    // On by default, far above what a normal client sends: a token bucket per
    // identity (per address when access control is off), tighter for the
    // families that start containers, run code or deploy.
    static registry::protocol::rate_limits default_rate_limits();
    registry::protocol::rate_limits rate_limits = default_rate_limits();
    struct audit_section {
        std::filesystem::path file;  // empty: no audit log
    } audit;
    // TLS on the listening port (tls/tls_context.hpp): set, the port serves
    // https:// and wss:// only. A client_ca_file turns on mutual TLS: a
    // client certificate signed by one of its CAs is required.
    struct tls_section {
        std::filesystem::path cert_file;       // PEM: the server certificate, then its chain
        std::filesystem::path key_file;        // PEM: its private key
        std::filesystem::path client_ca_file;  // PEM: CA certificates; empty: no client certificates
    };
    std::optional<tls_section> tls;
    // Access control (config/access_config.hpp). No `auth` section: no
    // tokens, and registryd listens on loopback only.
    std::optional<auth_config> auth;
    http_config http;
};

// A configuration or command-line error; the message names the key or flag.
class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// "1048576", "1024KiB", "1MiB", "1GiB" (also KB/MB/GB, meaning the same
// powers of 1024); nullopt if it is none of these.
std::optional<std::uint64_t> parse_byte_size(std::string_view s);

// Parses "HOST:PORT" ("[v6]:PORT" for IPv6). Throws config_error.
listen_address parse_listen_address(std::string_view text);

// Applies a YAML document on top of `cfg`. `origin` names the source in
// error messages (the file name). Throws config_error.
void apply_yaml(config& cfg, std::string_view yaml_text, std::string_view origin);

// Reads and applies a YAML file. Throws config_error.
void apply_yaml_file(config& cfg, const std::filesystem::path& file);

// limits.memory_budget_bytes when unset: a quarter of the memory registryd
// may use (the machine's, or a lower cgroup v2 memory.max), at least 64 MiB.
std::uint64_t default_memory_budget();

// Cross-field checks (min_ttl <= default_ttl <= max_ttl, ...). Throws config_error.
void validate(const config& cfg);

struct command_line;  // config/command_line.hpp

// Defaults, then the config file (if any), then the flags; validated.
config load(const command_line& cli);

// deploy.work_dir, or {data_dir}/deploy when it is not set.
inline std::filesystem::path deploy_work_dir(const config& cfg) {
    return cfg.deploy.work_dir.empty() ? cfg.data_dir / "deploy" : cfg.deploy.work_dir;
}

}  // namespace registryd
