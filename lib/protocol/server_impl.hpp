// What every connection of one server shares.
#pragma once

#include "dispatch.hpp"
#include "listing_cache.hpp"
#include "rate_limiter.hpp"

#include <registry/protocol/connection.hpp>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace registry::protocol {

struct server::impl {
    impl(class registry& r, struct limits l);

    void own(std::unique_ptr<module> m) {
        if (m) modules.push_back(std::move(m));
    }

    class registry& reg;
    struct limits lims;
    listing_cache listings;
    dispatch_table actions;
    rate_limiter rates;
    std::vector<std::unique_ptr<module>> modules;  // what the actions' entries point to
    std::unordered_map<std::string, std::size_t> subscriptions_by_source;  // non-empty sources with any
};

}  // namespace registry::protocol
