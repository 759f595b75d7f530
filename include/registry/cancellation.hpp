// Cancellation travels as std::stop_token into the operations that can wait,
// and out of them as operation_cancelled, an ordinary exception that a task
// propagates to its awaiter like any other.
#pragma once

#include <stdexcept>

namespace registry {

class operation_cancelled : public std::runtime_error {
public:
    operation_cancelled() : std::runtime_error("operation cancelled") {}
};

}  // namespace registry
