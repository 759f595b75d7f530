// What every connection of one server shares.
#pragma once

#include "listing_cache.hpp"
#include "request_parser.hpp"

#include <registry/deploy/deployer.hpp>
#include <registry/deploy/package_uploads.hpp>
#include <registry/protocol/connection.hpp>

#include <string>
#include <unordered_map>

namespace registry::protocol {

struct server::impl {
    impl(class registry& r, struct limits l, container_manager* c)
        : reg(r), lims(l), containers(c), listings(l.max_open_listings, l.max_open_listings_per_connection) {}

    class registry& reg;
    struct limits lims;
    container_manager* containers;
    request_parser parser;
    deploy::deployer* deployer = nullptr;  // null: the deployment actions answer unavailable
    deploy::package_uploads* uploads = nullptr;  // null: the upload actions answer unavailable
    repl::executor* repl = nullptr;
    listing_cache listings;
    std::unordered_map<std::string, std::size_t> subscriptions_by_source;  // non-empty sources with any
};

}  // namespace registry::protocol
