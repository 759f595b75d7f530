#include "cluster/member_engines.hpp"

#include "cluster/engine_offer.hpp"
#include "cluster/member_url.hpp"
#include "observability/log.hpp"

#include <utility>

namespace registryd {

namespace {

std::string node_endpoint(const member_record& m) { return "member " + m.name + " at " + m.url; }

}  // namespace

member_engines::member_engines(boost::asio::io_context& io, registry::container_manager& containers,
                               member_engines_options options, change_handler on_change)
    : io_(io),
      containers_(containers),
      options_(std::move(options)),
      on_change_(std::move(on_change)) {}

registry::container_engine* member_engines::engine(std::string_view name) const {
    const auto it = nodes_.find(name);
    return it == nodes_.end() ? nullptr : it->second.engine.get();
}

registry::task<void> member_engines::sync(const std::vector<member_record>& members, const std::string& secret) {
    secret_ = secret;
    struct offered {
        const member_record* member;
        std::size_t capacity;
    };
    std::map<std::string, offered, std::less<>> wanted;
    std::set<std::string, std::less<>> present;  // members with a record
    for (const auto& m : members) {
        present.insert(m.name);
        if (m.name == options_.self || m.url.empty()) continue;
        for (const auto& e : m.engines) {
            if (options_.configured.contains(e.name)) {
                // Every registryd configured with the same (shared) engines: not a mistake.
                if (warned_.insert("configured " + e.name + " " + m.name).second) {
                    log::info("an engine a member offers is named like one of this registryd's own; its own is used",
                              {{"engine", e.name}, {"member", m.name}});
                }
                continue;
            }
            const auto [it, fresh] = wanted.emplace(e.name, offered{&m, e.capacity});
            if (!fresh) {
                warn_once("twice " + e.name + " " + m.name,
                          "two members offer an engine of the same name; the first one's is used", e.name, m.name);
            }
        }
    }

    // What left, or moved.
    for (auto it = nodes_.begin(); it != nodes_.end();) {
        const auto want = wanted.find(it->first);
        std::string reason;
        if (want == wanted.end()) {
            reason = present.contains(it->second.member) ? "member " + it->second.member + " no longer offers it"
                                                         : "member " + it->second.member + " left the cluster";
        } else if (want->second.member->name != it->second.member || want->second.member->url != it->second.url) {
            reason = "offered by member " + want->second.member->name + " at " + want->second.member->url + " now";
        } else {
            if (want->second.capacity != it->second.capacity &&
                containers_.set_capacity(it->first, want->second.capacity)) {
                it->second.capacity = want->second.capacity;
            }
            ++it;
            continue;
        }
        const std::string name = it->first;
        log::info("container engine offered by a member left", {{"engine", name},
                                                                 {"member", it->second.member},
                                                                 {"reason", reason}});
        it = nodes_.erase(it);
        co_await containers_.remove_node(name, reason);
        if (on_change_) on_change_(name, nullptr, 0);
    }

    // What joined.
    for (const auto& [name, want] : wanted) {
        if (nodes_.contains(name)) continue;
        std::string why;
        auto engine = connect(name, *want.member, why);
        if (!engine) {
            warn_once("url " + name + " " + want.member->url, "cannot use the engine a member offers: " + why, name,
                      want.member->name);
            continue;
        }
        registry::container_node n{name, node_endpoint(*want.member), nullptr, want.capacity};
        if (auto joined = containers_.add_node(std::move(n), engine); !joined) {
            warn_once("node " + name + " " + want.member->name,
                      "cannot use the engine a member offers: " + joined.err().message, name, want.member->name);
            continue;
        }
        nodes_.emplace(name, node{want.member->name, want.member->url, want.capacity, engine});
        log::info("container engine offered by a member joined", {{"engine", name},
                                                                   {"member", want.member->name},
                                                                   {"url", want.member->url},
                                                                   {"capacity", want.capacity}});
        if (on_change_) on_change_(name, engine.get(), want.capacity);
    }
}

std::shared_ptr<docker_engine> member_engines::connect(const std::string& name, const member_record& m,
                                                       std::string& why) {
    const std::string key = name + "\n" + m.url;
    if (const auto known = engines_.find(key); known != engines_.end()) return known->second;
    auto at = member_endpoint_of(m.url);
    if (!at) {
        why = "member " + m.name + "'s " + at.err().message;
        return nullptr;
    }
    docker_engine_options o = options_.engine;
    o.http.peer_kind = "container engine " + name + " offered by member " + m.name + " at";
    o.http.tunnel = http_client_options::tunnel_options{std::string(engine_tunnel_path) + name,
                                                        std::string(engine_tunnel_protocol),
                                                        cluster_authorization(secret_)};
    if (at->tls) o.http.tls = options_.tls;
    auto engine = std::make_shared<docker_engine>(io_, std::move(at->where), std::move(o));
    engines_.emplace(key, engine);
    return engine;
}

void member_engines::warn_once(const std::string& key, const std::string& message, const std::string& engine,
                               const std::string& member) {
    if (!warned_.insert(key).second) return;
    log::warn(message, {{"engine", engine}, {"member", member}});
}

}  // namespace registryd
