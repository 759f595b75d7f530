#include "config/config.hpp"

#include "config/command_line.hpp"
#include "engine/engine_http.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include <cctype>
#include <charconv>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <utility>

#include <unistd.h>

namespace registryd {

namespace {

constexpr std::uint64_t kib = 1024;

[[noreturn]] void fail(std::string message) { throw config_error(std::move(message)); }

std::string where(std::string_view origin, const YAML::Mark& mark) {
    std::string s(origin);
    if (!mark.is_null()) {
        s += ':';
        s += std::to_string(mark.line + 1);
        s += ':';
        s += std::to_string(mark.column + 1);
    }
    return s;
}

std::optional<std::uint64_t> parse_uint(std::string_view s) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

}  // namespace

registry::protocol::rate_limits config::default_rate_limits() {
    using registry::protocol::permission_family;
    registry::protocol::rate_limits r;
    // A tenth of what one registryd serves of the cheapest requests: only a
    // runaway loop reaches it, not a host's clients re-registering at once
    // after a restart (they share one address without access control).
    r.requests = {10000, 20000};
    r.family(permission_family::containers_write) = {10, 50};
    r.family(permission_family::repl) = {10, 50};
    // Upload chunks count here: 50 chunks of 512 KiB a second is 25 MiB/s.
    r.family(permission_family::deploy) = {50, 200};
    return r;
}

std::optional<std::uint64_t> parse_byte_size(std::string_view s) {
    std::size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    auto number = parse_uint(s.substr(0, digits));
    if (!number) return std::nullopt;
    std::string_view unit = s.substr(digits);
    while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
    std::uint64_t mult = 1;
    if (unit.empty() || unit == "B") {
        mult = 1;
    } else if (unit == "KiB" || unit == "KB" || unit == "K") {
        mult = kib;
    } else if (unit == "MiB" || unit == "MB" || unit == "M") {
        mult = kib * kib;
    } else if (unit == "GiB" || unit == "GB" || unit == "G") {
        mult = kib * kib * kib;
    } else {
        return std::nullopt;
    }
    if (*number > std::numeric_limits<std::uint64_t>::max() / mult) return std::nullopt;
    return *number * mult;
}

namespace {

// Walks one YAML document against the schema, collecting the key path.
class reader {
public:
    reader(config& cfg, std::string_view origin) : cfg_(cfg), origin_(origin) {}

    void document(const YAML::Node& root) {
        if (!root || root.IsNull()) return;  // an empty file changes nothing
        if (!root.IsMap()) fail(where(origin_, root.Mark()) + ": the configuration must be a mapping");
        for (const auto& kv : root) {
            const std::string key = key_of(kv.first, "");
            const YAML::Node& v = kv.second;
            if (key == "listen") {
                const std::string s = scalar(v, key);
                try {
                    cfg_.listen = parse_listen_address(s);
                } catch (const config_error& e) {
                    fail(at(v, key) + e.what());
                }
            } else if (key == "data_dir") {
                const std::string s = scalar(v, key);
                if (s.empty()) fail(at(v, key) + "must not be empty");
                cfg_.data_dir = s;
            } else if (key == "log") {
                section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
                    if (k == "level") {
                        const std::string s = scalar(n, path);
                        auto l = log::parse_level(s);
                        if (!l) fail(at(n, path) + "must be one of debug, info, warn, error (got \"" + s + "\")");
                        cfg_.log.level = *l;
                        return true;
                    }
                    if (k == "repeat_burst") return set_count(cfg_.log.repeat_burst, n, path, 1);
                    if (k == "repeat_window_seconds") return set_seconds(cfg_.log.repeat_window, n, path, 1);
                    return false;
                });
            } else if (key == "limits") {
                auto& L = cfg_.limits;
                section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
                    if (k == "max_message_bytes") return set_bytes(L.max_message_bytes, n, path, 1);
                    if (k == "max_connections") return set_count(L.max_connections, n, path, 1);
                    if (k == "max_inflight_per_connection") return set_count(L.max_inflight_per_connection, n, path, 1);
                    if (k == "outbound_queue_bytes") return set_bytes(L.outbound_queue_bytes, n, path, 1);
                    if (k == "outbound_queue_messages") return set_count(L.outbound_queue_messages, n, path, 1);
                    if (k == "max_subscriptions_per_connection")
                        return set_count(L.max_subscriptions_per_connection, n, path, 0);
                    if (k == "memory_budget_bytes") return set_bytes(L.memory_budget_bytes, n, path, 1 << 20);
                    if (k == "max_handshakes") return set_count(L.max_handshakes, n, path, 1);
                    if (k == "max_connections_per_source") return set_count(L.max_connections_per_source, n, path, 1);
                    return false;
                });
            } else if (key == "quotas") {
                auto& Q = cfg_.quotas;
                section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
                    if (k == "registrations_per_address") return set_count(Q.registrations_per_address, n, path, 0);
                    if (k == "registrations_per_connection") return set_count(Q.registrations_per_connection, n, path, 0);
                    if (k == "subscriptions_per_address") return set_count(Q.subscriptions_per_address, n, path, 0);
                    return false;
                });
            } else if (key == "listings") {
                auto& P = cfg_.listings;
                section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
                    if (k == "max_page_items") return set_count(P.max_page_items, n, path, 1);
                    if (k == "max_open") return set_count(P.max_open, n, path, 1);
                    if (k == "max_open_per_connection") return set_count(P.max_open_per_connection, n, path, 1);
                    return false;
                });
            } else if (key == "timeouts") {
                auto& T = cfg_.timeouts;
                section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
                    if (k == "idle_seconds") return set_seconds(T.idle, n, path, 1);
                    if (k == "handshake_seconds") return set_seconds(T.handshake, n, path, 1);
                    if (k == "shutdown_seconds") return set_seconds(T.shutdown, n, path, 1);
                    return false;
                });
            } else if (key == "registry") {
                auto& R = cfg_.registry;
                section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
                    if (k == "default_ttl_seconds") return set_seconds(R.default_ttl, n, path, 1);
                    if (k == "min_ttl_seconds") return set_seconds(R.min_ttl, n, path, 1);
                    if (k == "max_ttl_seconds") return set_seconds(R.max_ttl, n, path, 1);
                    if (k == "session_grace_seconds") return set_seconds(R.session_grace, n, path, 0);
                    if (k == "history_limit") return set_count(R.history_limit, n, path, 0);
                    if (k == "bookmark_interval_seconds") return set_seconds(R.bookmark_interval, n, path, 1);
                    return false;
                });
            } else if (key == "containers") {
                containers(v, key);
            } else if (key == "store") {
                auto& S = cfg_.store;
                section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
                    if (k == "compact_journal_bytes") return set_bytes(S.compact_journal_bytes, n, path, 1);
                    if (k == "stale_reads") {
                        const std::string policy = scalar(n, path);
                        if (policy == "serve") {
                            S.stale_reads = config::store_section::stale_reads_policy::serve;
                        } else if (policy == "refuse") {
                            S.stale_reads = config::store_section::stale_reads_policy::refuse;
                        } else {
                            fail(at(n, path) + "must be serve or refuse");
                        }
                        return true;
                    }
                    if (k == "kind") {
                        const std::string kind = scalar(n, path);
                        if (kind == "file") {
                            S.type = config::store_section::kind::file;
                        } else if (kind == "etcd") {
                            S.type = config::store_section::kind::etcd;
                        } else {
                            fail(at(n, path) + "must be file or etcd");
                        }
                        return true;
                    }
                    if (k == "etcd") {
                        auto& E = S.etcd;
                        std::optional<YAML::Node> tls_node;  // where the section is, for the message
                        section(n, path, [&](const std::string& ek, const YAML::Node& en, const std::string& ep) {
                            if (ek == "endpoints") {
                                if (!en.IsSequence() || en.size() == 0) fail(at(en, ep) + "must be a non-empty list");
                                E.endpoints.clear();
                                for (std::size_t i = 0; i < en.size(); ++i) {
                                    std::string e = scalar(en[i], ep + "[" + std::to_string(i) + "]");
                                    while (e.size() > 8 && e.back() == '/') e.pop_back();
                                    if (!e.starts_with("http://") && !e.starts_with("https://")) {
                                        fail(at(en[i], ep) + "must be http://HOST:PORT or https://HOST:PORT (etcd's client URL)");
                                    }
                                    if (i > 0 && e.starts_with("https://") != E.endpoints.front().starts_with("https://")) {
                                        fail(at(en[i], ep) + "must all be http:// or all https://");
                                    }
                                    E.endpoints.push_back(std::move(e));
                                }
                                return true;
                            }
                            if (ek == "tls") {
                                tls_node = en;
                                auto& T = E.tls;
                                section(en, ep, [&](const std::string& tk, const YAML::Node& tn, const std::string& tp) {
                                    auto file = [&](std::string& into) {
                                        into = scalar(tn, tp);
                                        std::error_code fec;
                                        if (into.empty() || !std::filesystem::is_regular_file(into, fec)) {
                                            fail(at(tn, tp) + "no such file: " + into);
                                        }
                                        return true;
                                    };
                                    if (tk == "ca_file") return file(T.ca_file);
                                    if (tk == "cert_file") return file(T.cert_file);
                                    if (tk == "key_file") return file(T.key_file);
                                    if (tk == "server_name") {
                                        T.server_name = scalar(tn, tp);
                                        return true;
                                    }
                                    return false;
                                });
                                if (T.cert_file.empty() != T.key_file.empty()) {
                                    fail(at(en, ep) + "cert_file and key_file go together (the client certificate etcd's --client-cert-auth asks for)");
                                }
                                return true;
                            }
                            if (ek == "prefix") {
                                E.prefix = scalar(en, ep);
                                if (E.prefix.empty() || E.prefix.back() != '/') fail(at(en, ep) + "must end with '/'");
                                return true;
                            }
                            if (ek == "dial_timeout_ms") return set_millis(E.dial_timeout, en, ep, 1);
                            if (ek == "request_timeout_ms") return set_millis(E.request_timeout, en, ep, 1);
                            // At least 2: etcd's own minimum lease TTL is about that.
                            if (ek == "writer_lease_ttl_seconds") return set_seconds(E.writer_lease_ttl, en, ep, 2);
                            if (ek == "advertise_url") {
                                E.advertise_url = scalar(en, ep);
                                const bool ws = E.advertise_url.starts_with("ws://") || E.advertise_url.starts_with("wss://");
                                const auto host_at = E.advertise_url.find("://") + 3;
                                if (!ws || E.advertise_url.size() <= host_at || E.advertise_url[host_at] == '/') {
                                    fail(at(en, ep) + "must be a ws:// or wss:// URL with a host (how the other registryd reach this one)");
                                }
                                return true;
                            }
                            if (ek == "relay_writes") {
                                E.relay_writes = boolean(en, ep);
                                return true;
                            }
                            if (ek == "member") {
                                E.member = scalar(en, ep);
                                if (!node_name(E.member)) fail(at(en, ep) + "must be 1-64 characters of [A-Za-z0-9_.-]");
                                return true;
                            }
                            if (ek == "share_engines") {
                                E.share_engines = boolean(en, ep);
                                return true;
                            }
                            if (ek == "share_deploy_targets") {
                                E.share_deploy_targets = boolean(en, ep);
                                return true;
                            }
                            if (ek == "relay_ca_file") {
                                E.relay_ca_file = scalar(en, ep);
                                std::error_code fec;
                                if (!std::filesystem::is_regular_file(E.relay_ca_file, fec)) {
                                    fail(at(en, ep) + "no such file: " + E.relay_ca_file.string());
                                }
                                return true;
                            }
                            return false;
                        });
                        if (tls_node && !E.endpoints.front().starts_with("https://")) {
                            fail(at(*tls_node, path + ".tls") + "needs https:// endpoints");
                        }
                        return true;
                    }
                    return false;
                });
            } else if (key == "health") {
                auto& H = cfg_.health;
                section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
                    if (k == "max_concurrent_probes") return set_count(H.max_concurrent_probes, n, path, 1);
                    if (k == "ca_file") {
                        H.ca_file = scalar(n, path);
                        if (H.ca_file.empty()) fail(at(n, path) + "must not be empty");
                        return true;
                    }
                    return false;
                });
            } else if (key == "deploy") {
                auto& D = cfg_.deploy;
                section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
                    if (k == "prefix") {
                        D.prefix = scalar(n, path);
                        if (D.prefix.size() < 2 || D.prefix.front() != '/') fail(at(n, path) + "must be an absolute path");
                        while (D.prefix.size() > 1 && D.prefix.back() == '/') D.prefix.pop_back();
                        return true;
                    }
                    if (k == "work_dir") {
                        D.work_dir = scalar(n, path);
                        return true;
                    }
                    if (k == "script_timeout_seconds") return set_seconds(D.script_timeout, n, path, 1);
                    if (k == "run_as") return set_user(D.run_as, n, path);
                    if (k == "max_package_bytes") return set_bytes(D.max_package_bytes, n, path, 1);
                    if (k == "remote_hosts") return remote_hosts(D.remote_hosts, n, path);
                    if (k == "package_dirs") return package_dirs(D.package_dirs, n, path);
                    if (k == "max_upload_bytes") return set_bytes(D.max_upload_bytes, n, path, 1);
                    if (k == "upload_chunk_bytes") return set_bytes(D.upload_chunk_bytes, n, path, 1);
                    if (k == "max_uploads") return set_count(D.max_uploads, n, path, 1);
                    if (k == "max_uploads_per_identity") return set_count(D.max_uploads_per_identity, n, path, 0);
                    if (k == "upload_idle_seconds") return set_seconds(D.upload_idle_timeout, n, path, 1);
                    return false;
                });
            } else if (key == "repl") {
                read_repl_section(cfg_.repl, v, origin_);
            } else if (key == "notifications") {
                read_notifications_section(cfg_.notifications, v, origin_);
            } else if (key == "rate_limits") {
                rate_limits(v, key);
            } else if (key == "audit") {
                section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
                    if (k != "file") return false;
                    cfg_.audit.file = scalar(n, path);
                    if (cfg_.audit.file.empty()) fail(at(n, path) + "must not be empty");
                    return true;
                });
            } else if (key == "tls") {
                auto& T = cfg_.tls.emplace();
                section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
                    std::filesystem::path* file = k == "cert_file"        ? &T.cert_file
                                                  : k == "key_file"       ? &T.key_file
                                                  : k == "client_ca_file" ? &T.client_ca_file
                                                                          : nullptr;
                    if (!file) return false;
                    *file = scalar(n, path);
                    if (file->empty()) fail(at(n, path) + "must not be empty");
                    return true;
                });
                if (T.cert_file.empty() || T.key_file.empty())
                    fail(at(v, key) + "needs cert_file and key_file");
            } else if (key == "auth") {
                read_auth_section(cfg_.auth.emplace(), v, origin_);
            } else if (key == "http") {
                read_http_section(cfg_.http, v, origin_);
            } else {
                fail(at(kv.first, key) + "unknown key");
            }
        }
    }

private:
    using handler = std::function<bool(const std::string& key, const YAML::Node& value, const std::string& path)>;

    std::string at(const YAML::Node& n, const std::string& path) const {
        return where(origin_, n.Mark()) + ": " + path + ": ";
    }

    std::string key_of(const YAML::Node& k, const std::string& parent) const {
        const std::string path_hint = parent.empty() ? std::string("(key)") : parent + ".(key)";
        if (!k.IsScalar()) fail(where(origin_, k.Mark()) + ": " + path_hint + ": keys must be strings");
        return k.Scalar();
    }

    void section(const YAML::Node& v, const std::string& name, const handler& h) {
        if (v.IsNull()) return;  // "limits:" with nothing under it
        if (!v.IsMap()) fail(at(v, name) + "must be a mapping");
        for (const auto& kv : v) {
            const std::string k = key_of(kv.first, name);
            const std::string path = name + "." + k;
            if (!h(k, kv.second, path)) fail(at(kv.first, path) + "unknown key");
        }
    }

    std::string scalar(const YAML::Node& v, const std::string& path) const {
        if (!v.IsScalar()) fail(at(v, path) + "must be a scalar");
        return v.Scalar();
    }

    std::uint64_t integer(const YAML::Node& v, const std::string& path, std::uint64_t min) const {
        const std::string s = scalar(v, path);
        auto n = parse_uint(s);
        if (!n) fail(at(v, path) + "must be a non-negative integer (got \"" + s + "\")");
        if (*n < min) fail(at(v, path) + "must be at least " + std::to_string(min));
        return *n;
    }

    template <typename T>
    bool set_count(T& out, const YAML::Node& v, const std::string& path, std::uint64_t min) {
        const auto n = integer(v, path, min);
        if (n > std::numeric_limits<T>::max()) fail(at(v, path) + "is too large");
        out = static_cast<T>(n);
        return true;
    }

    template <typename T>
    bool set_bytes(T& out, const YAML::Node& v, const std::string& path, std::uint64_t min) {
        const std::string s = scalar(v, path);
        auto n = parse_byte_size(s);
        if (!n) fail(at(v, path) + "must be a byte count such as 1048576 or \"1MiB\" (got \"" + s + "\")");
        if (*n < min) fail(at(v, path) + "must be at least " + std::to_string(min));
        if (*n > std::numeric_limits<T>::max()) fail(at(v, path) + "is too large");
        out = static_cast<T>(*n);
        return true;
    }

    bool set_seconds(std::chrono::seconds& out, const YAML::Node& v, const std::string& path, std::uint64_t min) {
        const auto n = integer(v, path, min);
        if (n > 10u * 365 * 24 * 3600) fail(at(v, path) + "is too large");
        out = std::chrono::seconds(static_cast<std::int64_t>(n));
        return true;
    }

    bool set_millis(std::chrono::milliseconds& out, const YAML::Node& v, const std::string& path, std::uint64_t min) {
        const auto n = integer(v, path, min);
        if (n > 24u * 3600 * 1000) fail(at(v, path) + "is too large");
        out = std::chrono::milliseconds(static_cast<std::int64_t>(n));
        return true;
    }

    // rate_limits: {enabled, requests_per_second, burst, max_callers,
    // families: {FAMILY: {requests_per_second, burst}}}.
    void rate_limits(const YAML::Node& v, const std::string& key) {
        auto& L = cfg_.rate_limits;
        bool enabled = true;
        section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
            if (k == "enabled") {
                enabled = boolean(n, path);
                return true;
            }
            if (k == "max_callers") return set_count(L.max_callers, n, path, 1);
            if (k == "families") {
                section(n, path, [&](const std::string& f, const YAML::Node& fn, const std::string& fp) {
                    const auto family = registry::protocol::permission_family_from(f);
                    if (!family) {
                        fail(at(fn, fp) + "is not a permission family (discover, register, containers.read, "
                                          "containers.write, repl.read, repl, deploy)");
                    }
                    auto& r = L.family(*family);
                    section(fn, fp, [&](const std::string& rk, const YAML::Node& rn, const std::string& rp) {
                        return rate_field(r, rk, rn, rp);
                    });
                    return true;
                });
                return true;
            }
            return rate_field(L.requests, k, n, path);
        });
        if (!enabled) L = registry::protocol::rate_limits{};
    }

    // requests_per_second (0: this limit is off) or burst (at least 1).
    bool rate_field(registry::protocol::rate& r, const std::string& k, const YAML::Node& n, const std::string& path) {
        if (k != "requests_per_second" && k != "burst") return false;
        const std::string s = scalar(n, path);
        double x = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
        if (ec != std::errc{} || end != s.data() + s.size() || !(x >= 0 && x <= 1e9)) {
            fail(at(n, path) + "must be a number from 0 to 1e9 (got \"" + s + "\")");
        }
        if (k == "burst") {
            if (x < 1) fail(at(n, path) + "must be at least 1");
            r.burst = x;
        } else {
            r.per_second = x;
        }
        return true;
    }

    static bool node_name(std::string_view s) {
        return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                   c == '.' || c == '-';
        });
    }

    void containers(const YAML::Node& v, const std::string& key) {
        auto& C = cfg_.containers;
        section(v, key, [&](const std::string& k, const YAML::Node& n, const std::string& path) {
            if (k == "instance_id") {
                C.instance_id = scalar(n, path);
                if (!node_name(C.instance_id)) fail(at(n, path) + "must be 1-64 characters of [A-Za-z0-9_.-]");
                return true;
            }
            if (k == "engines") return engines(n, path);
            if (k == "accept_registered_engines") {
                C.accept_registered_engines = boolean(n, path);
                return true;
            }
            if (k == "heartbeat_interval_ms") return set_millis(C.heartbeat_interval, n, path, 10);
            if (k == "heartbeat_timeout_ms") return set_millis(C.heartbeat_timeout, n, path, 10);
            if (k == "default_ttl_seconds") return set_seconds(C.default_ttl, n, path, 1);
            if (k == "max_ttl_seconds") return set_seconds(C.max_ttl, n, path, 1);
            if (k == "stop_grace_seconds") return set_seconds(C.stop_grace, n, path, 0);
            if (k == "reap_attempts") return set_count(C.reap_attempts, n, path, 1);
            if (k == "reap_backoff_ms") return set_millis(C.reap_backoff, n, path, 1);
            if (k == "sweep_interval_ms") return set_millis(C.sweep_interval, n, path, 10);
            if (k == "max_queued") return set_count(C.max_queued, n, path, 0);
            if (k == "max_queued_per_identity") return set_count(C.max_queued_per_identity, n, path, 0);
            if (k == "presets") return presets(n, path);
            if (k == "policy") return container_policy(n, path);
            return false;
        });
    }

    // containers.policy: {images: [GLOB...], max_limits: {memory_bytes, cpus, pids}}.
    bool container_policy(const YAML::Node& v, const std::string& path) {
        auto& P = cfg_.containers.policy;
        section(v, path, [&](const std::string& k, const YAML::Node& n, const std::string& p) {
            if (k == "images") {
                if (!n.IsSequence()) fail(at(n, p) + "must be a list of image patterns");
                P.images.clear();
                for (std::size_t i = 0; i < n.size(); ++i) {
                    const std::string item = p + "[" + std::to_string(i) + "]";
                    std::string pattern = scalar(n[i], item);
                    const bool plain = std::none_of(pattern.begin(), pattern.end(),
                                                    [](char c) { return static_cast<unsigned char>(c) <= 0x20; });
                    if (pattern.empty() || pattern.size() > 255 || !plain) {
                        fail(at(n[i], item) + "must be 1-255 characters without whitespace");
                    }
                    P.images.push_back(std::move(pattern));
                }
                return true;
            }
            if (k == "max_limits") return preset_limits(P.max_limits, n, p);
            return false;
        });
        return true;
    }

    // containers.presets: NAME: {image, command, limits: {memory_bytes, cpus, pids}},
    // checked as container_create checks the same fields.
    bool presets(const YAML::Node& v, const std::string& path) {
        auto& out = cfg_.containers.presets;
        out.clear();
        section(v, path, [&](const std::string& name, const YAML::Node& item, const std::string& at_item) {
            if (!node_name(name)) fail(at(item, at_item) + "a preset's name must be 1-64 characters of [A-Za-z0-9_.-]");
            registry::container_preset p;
            section(item, at_item, [&](const std::string& k, const YAML::Node& n, const std::string& fp) {
                if (k == "image") {
                    p.image = scalar(n, fp);
                    const bool plain = std::none_of(p.image.begin(), p.image.end(),
                                                    [](char c) { return static_cast<unsigned char>(c) <= 0x20; });
                    if (p.image.empty() || p.image.size() > 255 || !plain) {
                        fail(at(n, fp) + "must be 1-255 characters without whitespace");
                    }
                    return true;
                }
                if (k == "command") {
                    if (!n.IsSequence()) fail(at(n, fp) + "must be a list of strings");
                    if (n.size() > 256) fail(at(n, fp) + "at most 256 entries");
                    p.command.clear();
                    for (std::size_t i = 0; i < n.size(); ++i) p.command.push_back(scalar(n[i], fp + "[" + std::to_string(i) + "]"));
                    return true;
                }
                if (k == "limits") return preset_limits(p.limits, n, fp);
                return false;
            });
            if (p.image.empty()) fail(at(item, at_item) + "image is required");
            out.insert_or_assign(name, std::move(p));
            return true;
        });
        return true;
    }

    bool preset_limits(registry::container_limits& out, const YAML::Node& v, const std::string& path) {
        section(v, path, [&](const std::string& k, const YAML::Node& n, const std::string& p) {
            if (k == "memory_bytes") {
                std::uint64_t bytes = 0;
                set_bytes(bytes, n, p, 6u << 20);
                out.memory_bytes = bytes;
                return true;
            }
            if (k == "cpus") {
                const std::string s = scalar(n, p);
                double cpus = 0;
                auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), cpus);
                if (ec != std::errc{} || end != s.data() + s.size() || !(cpus > 0 && cpus <= 1024)) {
                    fail(at(n, p) + "must be a number > 0 and <= 1024 (got \"" + s + "\")");
                }
                out.cpus = cpus;
                return true;
            }
            if (k == "pids") {
                const auto pids = integer(n, p, 1);
                if (pids > 4194304) fail(at(n, p) + "must be 1-4194304");
                out.pids = static_cast<std::int64_t>(pids);
                return true;
            }
            return false;
        });
        return true;
    }

    bool engines(const YAML::Node& v, const std::string& path) {
        if (!v.IsSequence()) fail(at(v, path) + "must be a list");
        auto& list = cfg_.containers.engines;
        list.clear();
        std::size_t i = 0;
        for (const auto& item : v) {
            const std::string at_item = path + "[" + std::to_string(i++) + "]";
            config::engine_entry e;
            section(item, at_item, [&](const std::string& k, const YAML::Node& n, const std::string& p) {
                if (k == "name") {
                    e.name = scalar(n, p);
                    if (!node_name(e.name)) fail(at(n, p) + "must be 1-64 characters of [A-Za-z0-9_.-]");
                    return true;
                }
                if (k == "endpoint") {
                    e.endpoint = scalar(n, p);
                    auto parsed = engine_endpoint::parse(e.endpoint);
                    if (!parsed) fail(at(n, p) + parsed.err().message);
                    return true;
                }
                if (k == "capacity") return set_count(e.capacity, n, p, 1);
                return false;
            });
            if (e.name.empty()) fail(at(item, at_item) + "name is required");
            if (e.endpoint.empty()) fail(at(item, at_item) + "endpoint is required");
            for (const auto& other : list) {
                if (other.name == e.name) fail(at(item, at_item) + "the name '" + e.name + "' is used twice");
            }
            list.push_back(std::move(e));
        }
        return true;
    }

    bool package_dirs(std::vector<std::filesystem::path>& out, const YAML::Node& v, const std::string& path) {
        if (!v.IsSequence()) fail(at(v, path) + "must be a list");
        out.clear();
        for (std::size_t i = 0; i < v.size(); ++i) {
            const std::string item = path + "[" + std::to_string(i) + "]";
            const std::string dir = scalar(v[i], item);
            if (dir.empty() || dir.front() != '/') fail(at(v[i], item) + "must be an absolute path");
            if (dir == "/") fail(at(v[i], item) + "must not be / (that would allow every file)");
            out.emplace_back(dir);
        }
        return true;
    }

    // deploy.run_as and a remote host's run_as: a user name ("root" only when written out).
    bool set_user(std::string& out, const YAML::Node& v, const std::string& path) {
        out = scalar(v, path);
        if (!valid_user_name(out)) fail(at(v, path) + "must be a user name: [a-z_][a-z0-9_-]*, at most 32 characters");
        return true;
    }

    bool remote_hosts(std::vector<remote_host>& out, const YAML::Node& v, const std::string& path) {
        if (!v.IsSequence()) fail(at(v, path) + "must be a list");
        out.clear();
        for (std::size_t i = 0; i < v.size(); ++i) {
            const std::string item = path + "[" + std::to_string(i) + "]";
            const YAML::Node n = v[i];
            if (!n.IsMap()) fail(at(n, item) + "must be a mapping");
            remote_host h;
            section(n, item, [&](const std::string& k, const YAML::Node& x, const std::string& p) {
                if (k == "name") h.name = scalar(x, p);
                else if (k == "host") h.host = scalar(x, p);
                else if (k == "port") h.port = static_cast<std::uint16_t>(integer_in(x, p, 1, 65535));
                else if (k == "user") h.user = scalar(x, p);
                else if (k == "identity_file") h.identity_file = scalar(x, p);
                else if (k == "public_key_file") h.public_key_file = scalar(x, p);
                else if (k == "known_hosts") h.known_hosts = scalar(x, p);
                else if (k == "accept_unknown_host_key") h.accept_unknown_host_key = boolean(x, p);
                else if (k == "prefix") h.prefix = scalar(x, p);
                else if (k == "endpoint_address") h.endpoint_address = scalar(x, p);
                else if (k == "connect_timeout_seconds") return set_seconds(h.connect_timeout, x, p, 1);
                else if (k == "run_as") return set_user(h.run_as, x, p);
                else return false;
                return true;
            });
            for (const auto& [key, value] : {std::pair<const char*, bool>{"name", h.name.empty()},
                                             {"host", h.host.empty()},
                                             {"user", h.user.empty()},
                                             {"identity_file", h.identity_file.empty()},
                                             {"known_hosts", h.known_hosts.empty()}}) {
                if (value) fail(at(n, item + "." + key) + "is required");
            }
            bool name_ok = h.name != "local";
            for (char c : h.name) name_ok = name_ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
            if (!name_ok) fail(at(n, item + ".name") + "must be [A-Za-z0-9._-] and not \"local\"");
            for (const auto& other : out) {
                if (other.name == h.name) fail(at(n, item + ".name") + "duplicate remote host name \"" + h.name + "\"");
            }
            if (h.prefix.size() < 2 || h.prefix.front() != '/') fail(at(n, item + ".prefix") + "must be an absolute path");
            out.push_back(std::move(h));
        }
        return true;
    }

    std::uint64_t integer_in(const YAML::Node& v, const std::string& path, std::uint64_t min, std::uint64_t max) const {
        const auto n = integer(v, path, min);
        if (n > max) fail(at(v, path) + "must be at most " + std::to_string(max));
        return n;
    }

    bool boolean(const YAML::Node& v, const std::string& path) const {
        const std::string s = scalar(v, path);
        if (s == "true") return true;
        if (s == "false") return false;
        fail(at(v, path) + "must be true or false");
    }

    config& cfg_;
    std::string origin_;
};

}  // namespace

std::string listen_address::to_string() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

listen_address parse_listen_address(std::string_view text) {
    const std::string shown(text);
    std::string_view host, port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            fail("bad listen address \"" + shown + "\": expected [IPV6]:PORT");
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) fail("bad listen address \"" + shown + "\": expected HOST:PORT");
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos)
            fail("bad listen address \"" + shown + "\": write IPv6 addresses as [ADDR]:PORT");
    }
    if (host.empty()) fail("bad listen address \"" + shown + "\": empty host");
    auto p = parse_uint(port);
    if (!p || *p > 65535) fail("bad listen address \"" + shown + "\": port must be 0-65535");
    return listen_address{std::string(host), static_cast<std::uint16_t>(*p)};
}

void apply_yaml(config& cfg, std::string_view yaml_text, std::string_view origin) {
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml_text));
    } catch (const YAML::Exception& e) {
        fail(where(origin, e.mark) + ": invalid YAML: " + e.msg);
    }
    try {
        reader(cfg, origin).document(root);
    } catch (const YAML::Exception& e) {
        fail(where(origin, e.mark) + ": " + e.msg);
    }
}

void apply_yaml_file(config& cfg, const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) fail("cannot read config file " + file.string());
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) fail("cannot read config file " + file.string());
    apply_yaml(cfg, text.str(), file.string());
}

namespace {

// A chunk travels as base64 (4 characters per 3 bytes) inside a frame with
// its envelope: the largest chunk must fit in the largest frame.
constexpr std::uint64_t upload_envelope_bytes = 1024;
std::uint64_t upload_chunk_frame(std::uint64_t chunk) { return (chunk + 2) / 3 * 4 + upload_envelope_bytes; }
std::uint64_t max_upload_chunk(std::uint64_t max_message_bytes) {
    return max_message_bytes > upload_envelope_bytes ? (max_message_bytes - upload_envelope_bytes) / 4 * 3 : 0;
}

}  // namespace

void validate(const config& cfg) {
    const auto& R = cfg.registry;
    if (R.min_ttl > R.max_ttl) fail("registry.min_ttl_seconds must not exceed registry.max_ttl_seconds");
    if (R.default_ttl < R.min_ttl || R.default_ttl > R.max_ttl)
        fail("registry.default_ttl_seconds must lie between registry.min_ttl_seconds and registry.max_ttl_seconds");
    if (cfg.data_dir.empty()) fail("data_dir must not be empty");
    // The responses of a full pipeline of requests can be queued at once
    // (a group commit completes them together): a smaller queue would
    // disconnect well-behaved clients as slow consumers.
    if (cfg.limits.outbound_queue_messages < cfg.limits.max_inflight_per_connection)
        fail("limits.outbound_queue_messages must be at least limits.max_inflight_per_connection");
    // One connection alone can always send a message of the largest size.
    if (cfg.limits.memory_budget_bytes != 0 && cfg.limits.memory_budget_bytes < cfg.limits.max_message_bytes)
        fail("limits.memory_budget_bytes must be at least limits.max_message_bytes");
    const auto& C = cfg.containers;
    if (C.default_ttl > C.max_ttl) fail("containers.default_ttl_seconds must not exceed containers.max_ttl_seconds");
    if (C.heartbeat_timeout < C.heartbeat_interval)
        fail("containers.heartbeat_timeout_ms must be at least containers.heartbeat_interval_ms");
    // On etcd the writer may run them on the engines the other registryd offer.
    const bool offered = cfg.store.type == config::store_section::kind::etcd && cfg.store.etcd.share_engines;
    if (cfg.repl.enabled && C.engines.empty() && !offered)
        fail("repl.enabled: REPL executions need at least one engine in containers.engines");
    // A preset the policy refuses could never be used: say so at start.
    for (const auto& [name, preset] : C.presets) {
        registry::container_spec spec;
        spec.image = preset.image;
        spec.limits = preset.limits;
        for (const auto& f : registry::enforce(C.policy, spec)) {
            fail("containers.presets." + name + "." + f.path + ": " + f.problem + " (containers.policy)");
        }
    }

    if (cfg.deploy.upload_chunk_bytes > max_upload_chunk(cfg.limits.max_message_bytes))
        fail("deploy.upload_chunk_bytes: a chunk of " + std::to_string(cfg.deploy.upload_chunk_bytes) +
             " bytes needs frames of " + std::to_string(upload_chunk_frame(cfg.deploy.upload_chunk_bytes)) +
             " bytes (base64 and the envelope), more than limits.max_message_bytes");

    // Safe defaults (docs/protocol.md, "Authentication and authorization").
    if (!cfg.auth && !is_loopback_host(cfg.listen.host))
        fail("listen " + cfg.listen.to_string() +
             ": without an `auth` section registryd listens on loopback only; add `auth: {tokens_file: FILE}` "
             "(see `registryd token new`), or `auth: {disabled: true}` to expose it without authentication");
    if (cfg.auth && !cfg.auth->disabled && cfg.auth->tokens_file.empty())
        fail("auth.tokens_file: is required (or auth.disabled: true)");
    if (cfg.http.metrics_token_required && (!cfg.auth || cfg.auth->disabled))
        fail("http.metrics_token_required: needs tokens (an `auth` section with auth.tokens_file)");
}

config load(const command_line& cli) {
    config cfg;
    if (cli.config_file) apply_yaml_file(cfg, *cli.config_file);
    if (cli.listen) cfg.listen = *cli.listen;
    if (cli.data_dir) cfg.data_dir = *cli.data_dir;
    if (cli.log_level) cfg.log.level = *cli.log_level;
    // Unset, the chunk size follows a lowered limits.max_message_bytes rather
    // than refusing to start over an option nobody set.
    if (cfg.deploy.upload_chunk_bytes == 0)
        cfg.deploy.upload_chunk_bytes =
            static_cast<std::size_t>(std::min<std::uint64_t>(512 * 1024, max_upload_chunk(cfg.limits.max_message_bytes)));
    validate(cfg);
    if (cfg.limits.memory_budget_bytes == 0)
        cfg.limits.memory_budget_bytes = std::max<std::uint64_t>(default_memory_budget(), cfg.limits.max_message_bytes);
    return cfg;
}

std::uint64_t default_memory_budget() {
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page = ::sysconf(_SC_PAGESIZE);
    std::uint64_t available = pages > 0 && page > 0 ? std::uint64_t(pages) * std::uint64_t(page) : 0;
    // Under a cgroup v2 memory limit ("max" when there is none).
    std::ifstream cgroup("/sys/fs/cgroup/memory.max");
    std::string text;
    if (cgroup >> text) {
        if (const auto n = parse_uint(text); n && (*n < available || available == 0)) available = *n;
    }
    return std::max<std::uint64_t>(available / 4, 64ull << 20);
}

}  // namespace registryd
