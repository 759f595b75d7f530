// libFuzzer target: request frames (lib/protocol/request_parser, and every
// module's params readers through the dispatch table), as any client may send
// them. A frame is either accepted or a rejection with a known error code and
// a message; the parser must never throw.
#include "protocol/containers/actions.hpp"
#include "protocol/deploy/actions.hpp"
#include "protocol/repl/actions.hpp"
#include "protocol/request_parser.hpp"
#include "protocol/services/actions.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

namespace {

// Every action, with entries that only read params.
const registry::protocol::dispatch_table& all_actions() {
    using namespace registry::protocol;
    static const dispatch_table table = [] {
        dispatch_table t;
        add_services_actions(t, nullptr, nullptr, nullptr);
        add_container_entries(t, nullptr, nullptr);
        add_deploy_entries(t, true);
        add_repl_entries(t, nullptr);
        return t;
    }();
    return table;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static registry::protocol::request_parser parser;  // one per event loop in registryd (loop_context), reused likewise
    const std::string_view frame(reinterpret_cast<const char*>(data), size);
    auto parsed = parser.parse(frame, all_actions(), nullptr);
    if (auto* r = std::get_if<registry::protocol::rejection>(&parsed)) {
        if (r->err.message.empty()) std::abort();
        if (r->err.code == registry::errc::internal) std::abort();
    }
    return 0;
}
