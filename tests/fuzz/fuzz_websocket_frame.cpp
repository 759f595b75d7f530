// libFuzzer target: the WebSocket frame parser (daemon/websocket/frame_parser)
// on a client's byte stream, cut into reads at points the input chooses.
// Checks beyond "no crash": a data piece lies inside the bytes given, a
// control payload is at most 125 bytes, and nothing is reported after an error.
#include "websocket/frame_parser.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

namespace ws = registryd::websocket;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    // The first byte: the size of each read (1-256 bytes).
    const std::size_t read_size = std::size_t{data[0]} + 1;
    std::vector<char> stream(data + 1, data + size);
    ws::frame_parser parser;
    bool failed = false;
    for (std::size_t at = 0; at < stream.size() && !failed; at += read_size) {
        const std::size_t n = std::min(read_size, stream.size() - at);
        std::span<char> in(stream.data() + at, n);
        const char* begin = in.data();
        const char* end = in.data() + in.size();
        for (;;) {
            const ws::parse_event e = parser.next(in);
            using kind = ws::parse_event::kind;
            if (e.what == kind::need_more) break;
            if (failed) std::abort();  // an event after the error
            switch (e.what) {
                case kind::data:
                    if (!e.bytes.empty() && (e.bytes.data() < begin || e.bytes.data() + e.bytes.size() > end)) std::abort();
                    break;
                case kind::ping:
                case kind::pong:
                case kind::close:
                    if (e.bytes.size() > 125) std::abort();
                    break;
                case kind::error:
                    failed = true;
                    break;
                case kind::need_more:
                    break;
            }
            if (failed) break;
        }
    }
    return 0;
}
