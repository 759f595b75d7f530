// A standby registryd (several registryd on one etcd and prefix,
// store/etcd_store_port.hpp): while another registryd writes the registry,
// this one serves its reads and subscriptions from a replica
// (registry::become_replica) that follows the writer's transactions through
// an etcd watch, with the writer's revisions and events; writes are refused
// and relays everything else (writes, containers, deployments, REPL) to the
// writer, over a connection per client (cluster/session_relay.hpp), and
// lets the writer reach its own container engines (cluster/engine_offer.hpp)
// and deploy targets (cluster/target_offer.hpp). Reads
// pass the store's read barrier first, so they see every write acknowledged
// anywhere before them, a write relayed through this standby included.
//
// It stops when this registryd is elected (the writer's daemon then opens the
// registry itself, and the standby's clients reconnect to it and resume with
// from_revision), on SIGTERM, and when it cannot follow (etcd compacted the
// history it needs, a transaction it cannot apply): then it is started anew.
#pragma once

#include "cluster/engine_offer.hpp"
#include "cluster/session_relay.hpp"
#include "config/config.hpp"
#include "observability/metrics.hpp"
#include "runtime/asio_clock.hpp"
#include "runtime/oneshot.hpp"
#include "server.hpp"

#include <registry/async_scope.hpp>
#include <registry/registry.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace registryd {

class etcd_store_port;
class member_directory;
namespace access {
class gate;
}

class standby_app {
public:
    // `members`: where the cluster's secret is, which the writer proves
    // when it reaches this registryd's engines (store.etcd.share_engines);
    // `listening`: called once it listens, with the address.
    standby_app(boost::asio::io_context& ioc, const config& cfg, std::optional<std::filesystem::path> port_file,
                etcd_store_port& port, access::gate& gate, std::string writer, boost::asio::ssl::context& relay_tls,
                std::shared_ptr<member_directory> members, std::function<void(const listen_address&)> listening);
    standby_app(const standby_app&) = delete;
    standby_app& operator=(const standby_app&) = delete;

    // Loads the replica, follows the writer, listens. `ended` is posted once
    // the standby has stopped and every connection is closed; `again` says
    // it stopped because it could not follow (start a new one).
    void start(std::function<void(bool again)> ended);
    // Closes the connections (going away) and stops following.
    void stop();
    // Another registryd became the writer, or published where it is
    // reached: relays go there, and not_writer names it.
    void writer_changed(std::string writer);
    // Where it listened, if it did: the writer's daemon listens there too
    // (with `listen` on port 0, the port it was given), so that clients
    // reconnect to the same address.
    const std::optional<listen_address>& address() const noexcept { return address_; }

private:
    registry::task<void> run();
    // The writer may reach this registryd's engines and deploy targets once
    // it knows the secret.
    registry::task<void> offer_to_writer();
    metrics::gauges gauges() const;

    boost::asio::io_context& ioc_;
    const config& cfg_;
    std::optional<std::filesystem::path> port_file_;
    etcd_store_port& port_;
    relay_target relay_;  // the writer (writer key's value, URL) the connections relay to
    std::shared_ptr<member_directory> members_;
    std::function<void(const listen_address&)> listening_;
    engine_offer offer_;  // containers.engines, for the writer
    bool relaying_ = false;  // store.etcd.relay_writes, and no mutual TLS
    asio_clock clock_;
    metrics metrics_;
    registry::registry reg_;
    server server_;
    oneshot stop_requested_;
    oneshot drained_;
    std::stop_source stop_;
    std::function<void(bool)> ended_;
    bool again_ = false;
    bool port_file_written_ = false;
    std::optional<listen_address> address_;
    // Declared last, destroyed first.
    registry::async_scope background_;  // the replica's run() (bookmarks)
    registry::async_scope lifecycle_;   // run()
};

}  // namespace registryd
