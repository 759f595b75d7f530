#include "config/notifications_config.hpp"
#include "config/yaml_section_reader.hpp"

#include "config/config.hpp"
#include "notify/webhook_url.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <functional>
#include <set>

namespace registryd {

namespace {

using namespace std::chrono_literals;

class notifications_reader : public yaml_section_reader {
public:
    using yaml_section_reader::yaml_section_reader;

    registry::webhook hook(const YAML::Node& v, const std::string& path) const {
        registry::webhook w;
        bool has_url = false;
        mapping(v, path, [&](const std::string& k, const YAML::Node& n, const std::string& p) {
            if (k == "name") {
                w.name = text(n, p);
                if (w.name.size() > 64) fail(n, p, "must be at most 64 characters");
                for (char c : w.name) {
                    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
                        fail(n, p, "may hold only a-z, 0-9, '-' and '_' (it names store keys and metric labels)");
                }
            } else if (k == "url") {
                w.url = text(n, p);
                std::string why;
                if (!parse_webhook_url(w.url, why)) fail(n, p, why);
                has_url = true;
            } else if (k == "events") {
                const auto names = texts(n, p);
                for (std::size_t i = 0; i < names.size(); ++i) {
                    const auto t = registry::parse_event_type(names[i]);
                    if (!t || !is_change(*t))
                        fail(n[i], p + "[" + std::to_string(i) + "]",
                             "'" + names[i] + "' is not an event of a change (docs/protocol.md, \"Events\")");
                    w.events.insert(*t);
                }
            } else if (k == "services") {
                w.services = texts(n, p);
            } else if (k == "secret") {
                w.secret = text(n, p);
            } else if (k == "timeout_ms") {
                w.timeout = std::chrono::milliseconds(number(n, p, 1, 300'000));
            } else if (k == "max_attempts") {
                w.max_attempts = static_cast<std::uint32_t>(number(n, p, 1, 1000));
            } else {
                return false;
            }
            return true;
        });
        if (w.name.empty()) fail(v, path, "needs a name");
        if (!has_url) fail(v, path, "needs a url");
        return w;
    }

    void hooks(registry::notifier_options& o, const YAML::Node& v, const std::string& path) const {
        if (!v.IsSequence()) fail(v, path, "must be a list of webhooks");
        if (v.size() > max_webhooks) fail(v, path, "must have at most " + std::to_string(max_webhooks) + " webhooks");
        std::set<std::string> names;
        for (std::size_t i = 0; i < v.size(); ++i) {
            const std::string p = path + "[" + std::to_string(i) + "]";
            auto w = hook(v[i], p);
            if (!names.insert(w.name).second) fail(v[i], p + ".name", "'" + w.name + "' names another webhook too");
            o.webhooks.push_back(std::move(w));
        }
    }

    static bool is_change(registry::event_type t) {
        using registry::event_type;
        return t != event_type::registry_loaded && t != event_type::bookmark && t != event_type::resync_required &&
               t != event_type::container_log && t != event_type::image_pull_progress;
    }

};

}  // namespace

registry::notifier_options notifier_options_from(const notifications_config& c) {
    registry::notifier_options o = c.delivery;
    o.check_url = [](std::string_view url) -> std::optional<std::string> {
        std::string why;
        if (parse_webhook_url(url, why)) return std::nullopt;
        return why;
    };
    return o;
}

void read_notifications_section(notifications_config& out, const YAML::Node& section, std::string_view origin) {
    notifications_reader r(origin);
    const std::string path = "notifications";
    auto& o = out.delivery;
    o.webhooks.clear();
    if (section.IsSequence()) {
        r.hooks(o, section, path);
        return;
    }
    r.mapping(section, path, [&](const std::string& k, const YAML::Node& n, const std::string& p) {
        if (k == "webhooks") {
            r.hooks(o, n, p);
        } else if (k == "initial_backoff_ms") {
            o.initial_backoff = std::chrono::milliseconds(r.number(n, p, 1, 3'600'000));
        } else if (k == "max_backoff_ms") {
            o.max_backoff = std::chrono::milliseconds(r.number(n, p, 1, 86'400'000));
        } else if (k == "max_outbox") {
            o.max_outbox = r.number(n, p, 1, 1'000'000);
        } else if (k == "max_dead_letters") {
            o.max_dead_letters = r.number(n, p, 1, 100'000);
        } else if (k == "ca_file") {
            out.ca_file = r.text(n, p);
        } else if (k == "identity_webhooks") {
            auto& I = o.identity_webhooks;
            r.mapping(n, p, [&](const std::string& ik, const YAML::Node& in, const std::string& ip) {
                if (ik == "allowed_urls") {
                    I.allowed_urls = r.texts(in, ip);
                } else if (ik == "max_per_identity") {
                    I.max_per_identity = r.number(in, ip, 1, 1000);
                } else if (ik == "max_total") {
                    I.max_total = r.number(in, ip, 1, 10000);
                } else {
                    return false;
                }
                return true;
            });
        } else {
            return false;
        }
        return true;
    });
    if (o.initial_backoff > o.max_backoff)
        r.fail(section, path, "initial_backoff_ms must not exceed max_backoff_ms");
}

}  // namespace registryd
