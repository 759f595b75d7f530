// A standby's relay for one client connection (registry/protocol/relay.hpp):
// the client's writes, container, deployment and REPL actions go to the
// registry's writer over a writer_link of the client's own, opened at the
// first of them with the client's bearer token, so that the writer sees the
// client as it is (its identity, rate limits and session-bound
// registrations, which end when this connection ends). The writer's answers
// and the events its requests start are delivered to the client as they come.
#pragma once

#include "cluster/writer_link.hpp"

#include <registry/protocol/relay.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace boost::asio {
class io_context;
}

namespace registryd {

// What every relay of one standby shares: where the writer is.
struct relay_target {
    boost::asio::io_context& ioc;
    std::string writer;      // the writer key's value: names the writer in errors
    std::string writer_url;  // where it is reached (cluster/writer_address.hpp); empty: it published none
    writer_link_options link;
};

class session_relay final : public registry::protocol::relay {
public:
    using deliver_fn = std::function<bool(std::string text, bool is_response)>;

    // `token`: the client's bearer token (empty: access control is off).
    session_relay(const relay_target& target, std::string token, deliver_fn deliver)
        : target_(target), token_(std::move(token)), deliver_(std::move(deliver)) {}
    ~session_relay() override { close(); }
    session_relay(const session_relay&) = delete;
    session_relay& operator=(const session_relay&) = delete;

    registry::task<registry::result<void>> forward(std::string id, std::string text) override;

    // The client's connection ended: so does its connection to the writer.
    void close();

private:
    const relay_target& target_;
    std::string token_;
    deliver_fn deliver_;
    std::shared_ptr<writer_link> link_;
    std::string link_url_;  // the writer link_ goes to
};

}  // namespace registryd
