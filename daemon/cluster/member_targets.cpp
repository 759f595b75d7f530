#include "cluster/member_targets.hpp"

#include "observability/log.hpp"

#include <utility>

namespace registryd {

member_targets::member_targets(boost::asio::io_context& io, registry::deploy::deployer& deployer,
                               member_targets_options options)
    : io_(io), deployer_(deployer), options_(std::move(options)), runner_(io) {}

registry::task<void> member_targets::sync(const std::vector<member_record>& members, const std::string& secret) {
    struct offer {
        const member_record* member;
        const member_record::target* target;
    };
    std::map<std::string, offer, std::less<>> wanted;
    for (const auto& m : members) {
        if (m.name == options_.self || m.url.empty()) continue;
        for (const auto& t : m.targets) {
            if (options_.configured.contains(t.name)) {
                // Every registryd configured with the same SSH hosts: not a mistake.
                log_once("configured " + t.name + " " + m.name, false,
                         "a deploy target a member offers is named like one of this registryd's own; its own is used",
                         t.name, m.name);
                continue;
            }
            if (!wanted.emplace(t.name, offer{&m, &t}).second) {
                log_once("twice " + t.name + " " + m.name, true,
                         "two members offer a deploy target of the same name; the first one's is used", t.name, m.name);
            }
        }
    }

    // What left.
    for (auto& [name, k] : targets_) {
        if (wanted.contains(name) || !k.target->offered()) continue;
        log::info("deploy target offered by a member left; its deployments stay as they are until it is back",
                  {{"target", name}, {"member", k.target->member()}});
        k.target->withdrawn();
    }

    // What joined, moved or came back; then what is not adopted yet.
    for (const auto& [name, want] : wanted) {
        auto it = targets_.find(name);
        if (it == targets_.end()) {
            // Not known{...}: GCC 12 destroys an aggregate's temporaries twice in a coroutine.
            it = targets_.try_emplace(name).first;
            it->second.target = std::make_unique<member_target>(io_, runner_, *want.target, options_.target);
        }
        member_target& t = *it->second.target;
        // Back, or offered by another member, or its member restarted at another address.
        const bool moved = !t.offered() || t.member() != want.member->name || t.url() != want.member->url;
        if (moved || t.prefix() != want.target->prefix || t.endpoint_address() != want.target->endpoint_address) {
            if (auto r = t.offered_by(*want.member, *want.target, secret); !r) {
                log_once("url " + name + " " + want.member->url, true,
                         "cannot use the deploy target a member offers: " + r.err().message, name, want.member->name);
                continue;
            }
            log::info("deploy target offered by a member joined",
                      {{"target", name}, {"member", want.member->name}, {"url", want.member->url}});
        }
        if (it->second.adopted) continue;
        auto adopted = co_await deployer_.adopt_target(t);
        if (!adopted) {
            log_once("adopt " + name + " " + adopted.err().message, true,
                     "cannot take the deployments on a deploy target a member offers: " + adopted.err().message, name,
                     want.member->name);
            continue;
        }
        it->second.adopted = true;
        if (*adopted > 0) {
            log::info("deployments on a member's deploy target adopted",
                      {{"target", name}, {"member", want.member->name}, {"deployments", *adopted}});
        }
    }
}

void member_targets::log_once(const std::string& key, bool warning, const std::string& message,
                              const std::string& target, const std::string& member) {
    if (!logged_.insert(key).second) return;
    if (warning) {
        log::warn(message, {{"target", target}, {"member", member}});
    } else {
        log::info(message, {{"target", target}, {"member", member}});
    }
}

}  // namespace registryd
