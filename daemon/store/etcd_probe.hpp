// Whether etcd can be reached, for /healthz: GET /health on the store's
// endpoints once a second (each within the store's request timeout), the
// first that answers 200 counting. A quiet registry writes nothing for long
// stretches; this notices a lost etcd before the next write does.
#pragma once

#include "store/store_health.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace registryd {

class engine_http_client;

class etcd_probe {
public:
    static constexpr std::chrono::milliseconds interval{1000};

    // `clients` and `names` (the configured URLs, for messages) pair up.
    etcd_probe(boost::asio::io_context& io, std::vector<engine_http_client> clients, std::vector<std::string> names);
    ~etcd_probe();
    etcd_probe(const etcd_probe&) = delete;
    etcd_probe& operator=(const etcd_probe&) = delete;

    // Probes at once, then every interval, until stop().
    void start();
    // The probe in flight is abandoned (its connection closed); no more start.
    void stop();

    store_health health() const;

private:
    class impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace registryd
