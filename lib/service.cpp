// The service state machine. The enumerations' names are codec/enum_names's.
#include <registry/service.hpp>

namespace registry {

bool is_allowed_transition(service_state from, service_state to) noexcept {
    using enum service_state;
    if (from == to) return false;
    switch (from) {
        case registered: return to == starting || to == running || to == stopped || to == failed;
        case starting: return to == running || to == stopping || to == failed;
        case running: return to == stopping || to == failed;
        case stopping: return to == stopped || to == failed;
        case stopped: return to == starting || to == failed;
        case failed: return to == starting || to == stopped;
    }
    return false;
}

}  // namespace registry
