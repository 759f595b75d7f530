#include <registry/container_policy.hpp>

#include <algorithm>
#include <sstream>

namespace registry {

namespace {

std::string number(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

template <typename T, typename Show>
void cap(std::optional<T>& asked, const std::optional<T>& ceiling, const char* path, Show show,
         std::vector<field_error>& out) {
    if (!ceiling) return;
    if (!asked) {
        asked = ceiling;
    } else if (*asked > *ceiling) {
        out.push_back({path, "must be at most " + show(*ceiling) + " (the container policy's ceiling)"});
    }
}

}  // namespace

std::vector<field_error> enforce(const container_policy& policy, container_spec& spec) {
    std::vector<field_error> out;
    if (!policy.images.empty() && std::none_of(policy.images.begin(), policy.images.end(), [&](const std::string& p) {
            return glob_match(p, spec.image);
        })) {
        std::string allowed;
        for (const auto& p : policy.images) allowed += (allowed.empty() ? "" : ", ") + p;
        out.push_back({"image", "'" + spec.image + "' is not allowed by the container policy (allowed: " + allowed + ")"});
    }
    auto integer = [](auto v) { return std::to_string(v); };
    cap(spec.limits.memory_bytes, policy.max_limits.memory_bytes, "limits.memory_bytes", integer, out);
    cap(spec.limits.cpus, policy.max_limits.cpus, "limits.cpus", number, out);
    cap(spec.limits.pids, policy.max_limits.pids, "limits.pids", integer, out);
    spec.drop_all_capabilities = true;
    spec.no_new_privileges = true;
    return out;
}

}  // namespace registry
