#include <registry/engine_declaration.hpp>

#include <charconv>

namespace registry {

namespace {

unexpected malformed(std::string path, std::string_view what) {
    return fail(errc::invalid_request, path + ": " + std::string(what));
}

}  // namespace

result<std::optional<engine_declaration>> read_engine_declaration(const service_instance& s) {
    namespace keys = engine_declaration_keys;
    auto kind = s.metadata.find(std::string(keys::kind));
    if (kind == s.metadata.end() || kind->second != keys::container_engine) return std::optional<engine_declaration>{};

    engine_declaration d;
    if (s.instance_id.empty()) {
        return malformed("service.instance_id", "is required for a container engine (it names the node)");
    }
    d.name = s.instance_id;

    const endpoint* ep = nullptr;
    std::size_t index = 0;
    for (std::size_t i = 0; i < s.endpoints.size(); ++i) {
        if (s.endpoints[i].name == keys::endpoint) {
            ep = &s.endpoints[i];
            index = i;
        }
    }
    if (!ep) return malformed("service.endpoints", "a container engine needs an endpoint named 'engine'");
    if (ep->protocol != "tcp" && ep->protocol != "http") {
        return malformed("service.endpoints[" + std::to_string(index) + "].protocol",
                         "must be 'tcp' or 'http' for a container engine (the Docker Engine API over TCP)");
    }
    const bool v6 = ep->address.find(':') != std::string::npos;
    d.endpoint = "tcp://" + (v6 ? "[" + ep->address + "]" : ep->address) + ":" + std::to_string(ep->port);

    auto capacity = s.metadata.find(std::string(keys::capacity));
    if (capacity != s.metadata.end()) {
        const std::string& text = capacity->second;
        std::size_t value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc{} || end != text.data() + text.size() || value == 0 || value > max_engine_capacity) {
            return malformed("service.metadata.capacity",
                             "must be a whole number 1-" + std::to_string(max_engine_capacity));
        }
        d.capacity = value;
    }
    return std::optional<engine_declaration>{std::move(d)};
}

}  // namespace registry
