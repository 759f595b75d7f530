// The health prober port: one probe of an http or tcp check, as the health
// monitor (health_monitor.hpp) asks for it. The embedder implements it
// (registryd: Asio, non-blocking, daemon/health/asio_prober.*; tests: a
// fake). A probe completes within its timeout, with a verdict, never an
// exception; the monitor decides what the verdict means for the check.
#pragma once

#include <registry/health_check.hpp>
#include <registry/task.hpp>

#include <cstdint>
#include <stop_token>
#include <string>

namespace registry {

struct probe_request {
    check_kind kind = check_kind::tcp;  // http or tcp
    std::string host;                   // a name or an IP literal (without brackets)
    std::uint16_t port = 0;
    // http
    bool tls = false;  // https
    bool tls_verify = true;
    std::string method = "GET";
    std::string target = "/";  // origin-form: path and query
    std::uint16_t status_min = 200;
    std::uint16_t status_max = 399;
    milliseconds timeout{2000};
};

struct probe_result {
    health_status status = health_status::critical;  // healthy, warning or critical
    std::string output;                              // what was seen: "HTTP 200", "connection refused", ...
};

class health_prober {
public:
    virtual ~health_prober() = default;
    // A stop (the monitor is stopping) ends the probe early, critical.
    virtual task<probe_result> probe(probe_request request, std::stop_token stop) = 0;
};

}  // namespace registry
