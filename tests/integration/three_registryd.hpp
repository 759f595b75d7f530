// Three registryd on one etcd and prefix (docs/protocol.md, "Several
// registryd"): the writer `a`, then the standbys `b` and `c`, each serving
// reads once constructed.
#pragma once

#include "etcd_server.hpp"
#include "harness.hpp"

#include <doctest/doctest.h>

#include <string>
#include <thread>

namespace it {

struct three_registryd {
    // A writer lease of 2 s: a killed writer is replaced quickly.
    static std::string config(const etcd_server& etcd, const std::string& prefix) {
        return "store:\n  kind: etcd\n  etcd:\n    endpoints: [\"" + etcd.client_url() + "\"]\n    prefix: " + prefix +
               "\n    dial_timeout_ms: 500\n    request_timeout_ms: 2000\n    writer_lease_ttl_seconds: 2\n";
    }
    static bool logged(const registryd& d, const std::string& text) {
        return d.diagnostics(200000).find(text) != std::string::npos;
    }

    explicit three_registryd(const std::string& prefix)
        : a(config(etcd, prefix)), b(config(etcd, prefix), false), c(config(etcd, prefix), false) {
        for (auto* d : {&b, &c}) {
            d->spawn();
            d->wait_ready(ms(15000));
            // The port file comes just before the log line.
            const auto deadline = steady::now() + scaled(ms(5000));
            while (!logged(*d, "standby: serving reads") && steady::now() < deadline) {
                std::this_thread::sleep_for(ms(20));
            }
            REQUIRE_MESSAGE(logged(*d, "standby: serving reads"), d->diagnostics());
        }
    }

    etcd_server etcd;
    registryd a;
    registryd b;
    registryd c;
};

}  // namespace it
