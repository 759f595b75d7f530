// Discovery: the queries over the current services.
#include "registry_impl.hpp"

namespace registry {

bool service_filter::matches(const service_instance& s) const {
    if (name && s.name != *name) return false;
    if (version && s.version != *version) return false;
    if (state && s.state != *state) return false;
    if (host) {
        if (*host == "local") {
            if (s.where.remote) return false;
        } else if (!s.where.remote || s.where.host != *host) {
            return false;
        }
    }
    for (const auto& [k, v] : metadata) {
        auto it = s.metadata.find(k);
        if (it == s.metadata.end() || it->second != v) return false;
    }
    if (health && !passes(*health, s.health, !s.checks.empty())) return false;
    return true;
}

service_ptr registry::find(std::string_view instance_id) const {
    auto it = impl_->services.find(instance_id);
    return it == impl_->services.end() ? nullptr : it->second;
}

std::vector<service_ptr> registry::list(const service_filter& filter) const {
    std::vector<service_ptr> out;
    for (const auto& [id, s] : impl_->services) {
        if (filter.matches(*s)) out.push_back(s);
    }
    return out;
}

std::vector<endpoint_view> registry::endpoints(const endpoint_filter& filter) const {
    std::vector<endpoint_view> out;
    for (const auto& [id, s] : impl_->services) {
        if (filter.service && s->name != *filter.service) continue;
        if (filter.health && !passes(*filter.health, s->health, !s->checks.empty())) continue;
        for (const auto& ep : s->endpoints) {
            if (filter.endpoint && ep.name != *filter.endpoint) continue;
            if (filter.protocol && ep.protocol != *filter.protocol) continue;
            out.push_back(endpoint_view{s, &ep});
        }
    }
    return out;
}

}  // namespace registry
