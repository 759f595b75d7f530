// TLS to etcd (config store.etcd.tls, https:// endpoints): the client context
// every connection to etcd is made with. It verifies etcd's certificate
// against ca_file (the system's CAs when none is given) and presents
// cert_file/key_file to an etcd started with --client-cert-auth. TLS 1.2 and
// later. The server's name is checked per connection (engine_http.cpp).
#pragma once

#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace registryd {

struct etcd_tls_options {
    std::string ca_file;      // PEM; empty: the system's default CAs
    std::string cert_file;    // PEM client certificate (chain), with key_file; empty: none
    std::string key_file;
    std::string server_name;  // the name etcd's certificate must carry; empty: each endpoint's host
};

// Throws std::runtime_error naming the config key and the file
// ("store.etcd.tls.ca_file /etc/etcd/ca.pem: No such file or directory").
std::shared_ptr<boost::asio::ssl::context> make_etcd_tls_context(const etcd_tls_options& opts);

}  // namespace registryd
