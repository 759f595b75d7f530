#include "config/repl_config.hpp"
#include "config/yaml_section_reader.hpp"

#include "config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <limits>
#include <optional>
#include <set>

namespace registryd {

namespace {

class repl_reader : public yaml_section_reader {
public:
    using yaml_section_reader::yaml_section_reader;

    std::uint64_t bytes(const YAML::Node& v, const std::string& path) const {
        auto n = parse_byte_size(text(v, path));
        if (!n || *n == 0) fail(v, path, "must be a positive byte count such as 1048576 or \"1MiB\"");
        return *n;
    }

    void limits(registry::repl::limits& l, const YAML::Node& v, const std::string& path) const {
        mapping(v, path, [&](const std::string& k, const YAML::Node& n, const std::string& p) {
            if (k == "timeout_ms") {
                l.timeout = std::chrono::milliseconds(number(n, p, 1, 86'400'000));
            } else if (k == "output_bytes") {
                l.output_bytes = bytes(n, p);
            } else if (k == "memory_bytes") {
                l.memory_bytes = bytes(n, p);
            } else if (k == "pids") {
                l.pids = static_cast<std::int64_t>(number(n, p, 1, 1'000'000));
            } else if (k == "cpu_millicores") {
                l.cpu_millicores = static_cast<std::uint32_t>(number(n, p, 1, 1'000'000));
            } else if (k == "network") {
                l.network = boolean(n, p);
            } else {
                return false;
            }
            return true;
        });
    }

    // A language entry: either one version (its keys at the top), or
    // `versions`, each version a mapping of the same keys (but `name`) that
    // override the entry's own for that version. The default version comes
    // first in the result (language.hpp).
    std::vector<registry::repl::language> language(const YAML::Node& v, const std::string& path) const {
        draft base;
        std::optional<YAML::Node> versions, default_version;
        mapping(v, path, [&](const std::string& k, const YAML::Node& n, const std::string& p) {
            if (k == "name") {
                base.l.name = text(n, p);
            } else if (k == "versions") {
                versions = n;
            } else if (k == "default_version") {
                default_version = n;
            } else {
                return version_key(base, k, n, p);
            }
            return true;
        });
        if (base.l.name.empty()) fail(v, path + ".name", "is required");
        if (!versions) {
            if (default_version) fail(*default_version, path + ".default_version", "needs " + path + ".versions");
            return {finish(base, v, path, path)};
        }
        if (base.seen.contains("version")) {
            fail(v, path + ".version", "not with " + path + ".versions: each version names its own");
        }
        if (!versions->IsSequence() || versions->size() == 0) fail(*versions, path + ".versions", "must be a non-empty list");
        std::vector<registry::repl::language> out;
        for (std::size_t i = 0; i < versions->size(); ++i) {
            const YAML::Node item = (*versions)[i];
            const std::string at = path + ".versions[" + std::to_string(i) + "]";
            draft d = base;
            d.seen.erase("version");
            mapping(item, at, [&](const std::string& k, const YAML::Node& n, const std::string& p) {
                return version_key(d, k, n, p);
            });
            if (!d.seen.contains("version")) fail(item, at + ".version", "is required");
            if (d.l.version.empty()) fail(item, at + ".version", "must not be empty");
            for (const auto& other : out) {
                if (other.version == d.l.version) fail(item, at + ".version", "duplicate version '" + d.l.version + "'");
            }
            out.push_back(finish(d, item, at, path));
        }
        if (default_version) {
            const std::string wanted = text(*default_version, path + ".default_version");
            auto it = std::find_if(out.begin(), out.end(), [&](const auto& l) { return l.version == wanted; });
            if (it == out.end()) {
                std::string known;
                for (const auto& l : out) known += (known.empty() ? "'" : ", '") + l.version + "'";
                fail(*default_version, path + ".default_version",
                     "'" + wanted + "' is none of " + path + ".versions (" + known + ")");
            }
            std::rotate(out.begin(), it, it + 1);
        }
        return out;
    }

private:
    struct draft {
        registry::repl::language l;
        std::set<std::string> seen;  // keys given, at the entry's level or the version's
    };

    // A key a language entry and each of its versions may have.
    bool version_key(draft& d, const std::string& k, const YAML::Node& n, const std::string& p) const {
        auto& l = d.l;
        if (k == "version") {
            l.version = text(n, p, true);
        } else if (k == "image") {
            l.image = text(n, p);
        } else if (k == "source_file") {
            l.source_file = text(n, p);
        } else if (k == "compile") {
            l.compile = texts(n, p, true);
        } else if (k == "run") {
            l.run = texts(n, p, true);
            if (l.run.empty()) fail(n, p, "must not be empty");
        } else if (k == "warm_pool") {
            l.warm_pool = number(n, p, 0, 64);
        } else if (k == "defaults") {
            limits(l.defaults, n, p);
        } else if (k == "maximum") {
            limits(l.maximum, n, p);
        } else {
            return false;
        }
        d.seen.insert(k);
        return true;
    }

    // `at`: where this version is; `entry`: its language entry (the same
    // without versions), where its required keys may be given instead.
    registry::repl::language finish(draft d, const YAML::Node& v, const std::string& at,
                                    const std::string& entry) const {
        for (const char* required : {"image", "source_file", "run"}) {
            if (!d.seen.contains(required)) {
                fail(v, at + "." + required, at == entry ? "is required" : "is required (here or in " + entry + ")");
            }
        }
        auto& l = d.l;
        if (!d.seen.contains("maximum")) l.maximum = l.defaults;
        const auto& dl = l.defaults;
        const auto& m = l.maximum;
        if (dl.timeout > m.timeout || dl.output_bytes > m.output_bytes || dl.memory_bytes > m.memory_bytes ||
            dl.pids > m.pids || dl.cpu_millicores > m.cpu_millicores || (dl.network && !m.network)) {
            fail(v, at + ".defaults", "must not exceed " + at + ".maximum");
        }
        return std::move(d.l);
    }

};

}  // namespace

void read_repl_section(repl_config& out, const YAML::Node& section, std::string_view origin) {
    if (section.IsNull()) return;
    const repl_reader r(origin);
    r.mapping(section, "repl", [&](const std::string& k, const YAML::Node& n, const std::string& p) {
        if (k == "engine" || k == "owner") {
            // Earlier versions had an engine of their own for the REPL.
            r.fail(n, p, "no longer supported: REPL executions run on the engines of containers.engines, "
                         "under its instance_id (set repl.enabled: true)");
        } else if (k == "enabled") {
            out.enabled = r.boolean(n, p);
        } else if (k == "max_concurrent") {
            out.max_concurrent = r.number(n, p, 1, 10'000);
        } else if (k == "max_queue") {
            out.max_queue = r.number(n, p, 0, 1'000'000);
        } else if (k == "max_concurrent_per_identity") {
            out.max_concurrent_per_identity = r.number(n, p, 0, 1'000'000);
        } else if (k == "idempotency_window_seconds") {
            out.idempotency_window = std::chrono::seconds(r.number(n, p, 0, 86'400));
        } else if (k == "warm_max_age_seconds") {
            out.warm_max_age = std::chrono::seconds(r.number(n, p, 1, 86'400));
        } else if (k == "lease_grace_seconds") {
            out.lease_grace = std::chrono::seconds(r.number(n, p, 1, 86'400));
        } else if (k == "user") {
            out.user = r.text(n, p);
        } else if (k == "result_retention_seconds") {
            out.results.retention = std::chrono::seconds(r.number(n, p, 0, 30 * 86'400));
        } else if (k == "max_results") {
            out.results.max_results = r.number(n, p, 0, 10'000'000);
        } else if (k == "max_result_bytes") {
            out.results.max_bytes = r.bytes(n, p);
        } else if (k == "max_results_per_identity") {
            out.results.max_results_per_identity = r.number(n, p, 0, 10'000'000);
        } else if (k == "max_result_bytes_per_identity") {
            out.results.max_bytes_per_identity = r.bytes(n, p);
        } else if (k == "languages") {
            if (!n.IsSequence()) r.fail(n, p, "must be a list");
            out.languages.clear();
            for (std::size_t i = 0; i < n.size(); ++i) {
                const std::string at = p + "[" + std::to_string(i) + "]";
                auto versions = r.language(n[i], at);
                for (const auto& other : out.languages) {
                    if (other.name == versions.front().name) {
                        r.fail(n[i], at + ".name", "duplicate language '" + other.name +
                                                       "' (several versions of one language: its versions list)");
                    }
                }
                for (auto& l : versions) out.languages.push_back(std::move(l));
            }
        } else {
            return false;
        }
        return true;
    });
}

}  // namespace registryd
