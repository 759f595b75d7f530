// Where a standby relays to (cluster/writer_address.hpp): the URL the writer
// publishes after its name in the writer key, and reads back from it.
#include "cluster/writer_address.hpp"

#include <doctest/doctest.h>

using namespace registryd;

TEST_CASE("writer address: the listen address by default, advertise_url when set, none for a wildcard") {
    config cfg;
    CHECK(advertised_url(cfg, listen_address{"127.0.0.1", 7001}) == "ws://127.0.0.1:7001/");
    CHECK(advertised_url(cfg, listen_address{"::1", 7001}) == "ws://[::1]:7001/");
    CHECK_FALSE(advertised_url(cfg, listen_address{"0.0.0.0", 7001}));
    CHECK_FALSE(advertised_url(cfg, listen_address{"::", 7001}));
    cfg.store.etcd.advertise_url = "wss://registry-2.example.com:7443/";
    CHECK(advertised_url(cfg, listen_address{"0.0.0.0", 7001}) == "wss://registry-2.example.com:7443/");
}

TEST_CASE("writer address: read back from the holder, none from a holder that published none") {
    const std::string holder = holder_at("web-2 pid 812 listen 10.0.0.2:0", "ws://10.0.0.2:7001/");
    CHECK(holder == "web-2 pid 812 listen 10.0.0.2:0 at ws://10.0.0.2:7001/");
    CHECK(url_of_holder(holder) == "ws://10.0.0.2:7001/");
    CHECK_FALSE(url_of_holder("web-2 pid 812 listen 10.0.0.2:7001"));
    CHECK_FALSE(url_of_holder("web-2 at home"));  // " at " without a URL after it
}
