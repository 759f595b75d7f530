#include "cluster/writer_address.hpp"

#include "config/access_config.hpp"

namespace registryd {

namespace {

constexpr std::string_view separator = " at ";

}  // namespace

std::optional<std::string> advertised_url(const config& cfg, const listen_address& bound) {
    if (!cfg.store.etcd.advertise_url.empty()) return cfg.store.etcd.advertise_url;
    const std::string& host = bound.host;
    if (host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]") return std::nullopt;
    return std::string(transport_encrypted(cfg) ? "wss://" : "ws://") + bound.to_string() + "/";
}

std::string holder_at(std::string_view name, std::string_view url) {
    return std::string(name) + std::string(separator) + std::string(url);
}

std::optional<std::string> url_of_holder(std::string_view holder) {
    const auto at = holder.rfind(separator);
    if (at == std::string_view::npos) return std::nullopt;
    const std::string_view url = holder.substr(at + separator.size());
    if (!url.starts_with("ws://") && !url.starts_with("wss://")) return std::nullopt;
    return std::string(url);
}

}  // namespace registryd
