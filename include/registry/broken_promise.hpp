// What awaiting a task that has no coroutine throws: a default-constructed
// task, or one whose coroutine was moved into another task. It is a
// programming error, but a defined one (as cppcoro's broken_promise), not a
// null coroutine handle dereferenced.
#pragma once

#include <stdexcept>

namespace registry {

class broken_promise : public std::logic_error {
public:
    broken_promise() : std::logic_error("awaited a task that has no coroutine (default-constructed or moved from)") {}
};

}  // namespace registry
