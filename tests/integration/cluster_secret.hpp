// The cluster's secret (cluster/member_directory.hpp), read from etcd as
// every member reads it: what a test needs to call a member as the writer does.
#pragma once

#include "etcd_server.hpp"
#include "harness.hpp"
#include "io_driver.hpp"

#include "engine/engine_http.hpp"
#include "store/base64.hpp"

#include <doctest/doctest.h>

#include <string>

namespace it {

// `prefix`: the registryd's store.etcd.prefix ("/members/").
inline std::string cluster_secret(const etcd_server& etcd, const std::string& prefix) {
    io_loop l;
    auto where = ::registryd::engine_endpoint::parse("tcp://" + etcd.client_url().substr(7));
    REQUIRE(where.ok());
    ::registryd::engine_http_client client(l.io, *where);
    const std::string body = "{\"key\":\"" + ::registryd::base64_encode(prefix + "meta/cluster_secret") + "\"}";
    auto answer = l.await(client.request(::registryd::http_request{"POST", "/v3/kv/range", body, "application/json", false}));
    REQUIRE_MESSAGE(answer.ok(), answer.err().message);
    auto secret = ::registryd::base64_decode(str(parse(answer->body), "/kvs/0/value"));
    REQUIRE(secret);
    return *secret;
}

}  // namespace it
