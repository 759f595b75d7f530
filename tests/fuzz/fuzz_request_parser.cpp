// libFuzzer target: request frames (lib/protocol/request_parser), as any
// client may send them. A frame is either a request or a rejection with a
// known error code and a message; the parser must never throw.
#include "protocol/request_parser.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static registry::protocol::request_parser parser;  // one per server in registryd, reused likewise
    const std::string_view frame(reinterpret_cast<const char*>(data), size);
    auto parsed = parser.parse(frame);
    if (auto* r = std::get_if<registry::protocol::rejection>(&parsed)) {
        if (r->err.message.empty()) std::abort();
        if (r->err.code == registry::errc::internal) std::abort();
    }
    return 0;
}
