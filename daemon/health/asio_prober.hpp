// registry::health_prober on Asio: http and tcp probes of the health
// monitor's checks (docs/protocol.md, "Health checks").
//
// Non-blocking: name resolution, connect, request and response header run
// as Asio operations on the io_context's thread, under one timer (the
// check's timeout) that closes the socket when it fires; a stop does the
// same. tcp: passing once connected. http: the request's status line and
// headers only (the body is not read); passing within expected_status, 429
// warning, anything else critical. https is not supported yet (the daemon
// has no TLS client): such a check is critical, saying so.
#pragma once

#include <registry/ports/health_prober.hpp>

namespace boost::asio {
class io_context;
}

namespace registryd {

class asio_prober final : public registry::health_prober {
public:
    explicit asio_prober(boost::asio::io_context& ioc) noexcept : ioc_(ioc) {}
    registry::task<registry::probe_result> probe(registry::probe_request request, std::stop_token stop) override;

private:
    boost::asio::io_context& ioc_;
};

}  // namespace registryd
