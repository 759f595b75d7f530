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
    // How the standbys answer writes: relayed to the writer, or not_writer
    // (store.etcd.relay_writes: false), for the clients that move.
    enum class writes { relayed, refused };

    // A writer lease of 2 s: a killed writer is replaced quickly. `extra`:
    // more top-level sections; `etcd_extra`: more lines of store.etcd.
    static std::string config(const etcd_server& etcd, const std::string& prefix, writes w = writes::relayed,
                              const std::string& extra = {}, const std::string& etcd_extra = {}) {
        return "store:\n  kind: etcd\n  etcd:\n    endpoints: [\"" + etcd.client_url() + "\"]\n    prefix: " + prefix +
               "\n    dial_timeout_ms: 500\n    request_timeout_ms: 2000\n    writer_lease_ttl_seconds: 2\n" +
               (w == writes::refused ? "    relay_writes: false\n" : "") + etcd_extra + extra;
    }
    static bool logged(const registryd& d, const std::string& text) {
        return d.diagnostics(200000).find(text) != std::string::npos;
    }

    // Once constructed, the standbys serve, and know where the writer is
    // (they relay to it).
    explicit three_registryd(const std::string& prefix, writes w = writes::relayed, const std::string& extra = {},
                             const std::string& etcd_extra = {})
        : a(config(etcd, prefix, w, extra, etcd_extra)),
          b(config(etcd, prefix, w, extra, etcd_extra), false),
          c(config(etcd, prefix, w, extra, etcd_extra), false) {
        for (auto* d : {&b, &c}) {
            d->spawn();
            d->wait_ready(ms(15000));
            // The port file comes just before the log line.
            wait_logged(*d, "standby: serving reads");
            wait_logged(*d, "://127.0.0.1:" + std::to_string(a.port()) + "/");  // the writer's published address
        }
    }

    static void wait_logged(const registryd& d, const std::string& text) {
        const auto deadline = steady::now() + scaled(ms(5000));
        while (!logged(d, text) && steady::now() < deadline) std::this_thread::sleep_for(ms(20));
        REQUIRE_MESSAGE(logged(d, text), d.diagnostics());
    }

    etcd_server etcd;
    registryd a;
    registryd b;
    registryd c;
};

}  // namespace it
