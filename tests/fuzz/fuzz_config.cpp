// libFuzzer target: registryd's YAML configuration (daemon/config/config). Any
// document is applied or refused with a config_error naming the key; no
// other exception may escape (registryd would die with a stack trace
// instead of "exit 2 with the key's name").
#include "config/config.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view yaml(reinterpret_cast<const char*>(data), size);
    registryd::config cfg;
    try {
        registryd::apply_yaml(cfg, yaml, "fuzz.yaml");
        registryd::validate(cfg);
    } catch (const registryd::config_error& e) {
        if (std::string_view(e.what()).empty()) std::abort();
    }
    return 0;
}
