// libFuzzer target: the stored-record decoders (lib/codec/service_record,
// container_record, deployment_record, event_record). The first byte picks the decoder. What
// decodes must encode to a record that decodes to the same value.
#include "codec/container_record.hpp"
#include "codec/deployment_record.hpp"
#include "codec/event_record.hpp"
#include "codec/service_record.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

template <typename Decode, typename Encode, typename Same>
void round_trip(std::string_view json, Decode decode, Encode encode, Same same) {
    auto first = decode(json);
    if (!first) {
        if (first.err().message.empty()) std::abort();
        return;
    }
    const std::string text = encode(*first);
    auto second = decode(text);
    if (!second || !same(*first, *second) || encode(*second) != text) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace registry::detail;
    if (size == 0) return 0;
    const std::string_view json(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 4) {
        case 0:
            round_trip(json, decode_service_record, encode_service_record,
                       [](const auto& a, const auto& b) { return a == b; });
            break;
        case 1:
            // managed_container has no operator==: its encoding is the comparison.
            round_trip(json, decode_container_record, encode_container_record,
                       [](const auto&, const auto&) { return true; });
            break;
        case 3:
            round_trip(json, [](std::string_view j) { return decode_event_log(j, 1); }, encode_event_log,
                       [](const auto& a, const auto& b) { return a.size() == b.size(); });
            break;
        default:
            round_trip(json, decode_deployment_record, encode_deployment_record,
                       [](const auto&, const auto&) { return true; });
            break;
    }
    return 0;
}
