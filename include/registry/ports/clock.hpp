// The clock port: wall-clock time and timed waits.
//
// Deadlines are absolute wall-clock times (milliseconds since the Unix epoch)
// because they are persisted: a lease that expires at 12:00:05 still expires
// then after a restart. The embedder implements this (registryd on an Asio
// system_timer; tests with testing::fake_clock).
#pragma once

#include <registry/task.hpp>

#include <chrono>
#include <stop_token>

namespace registry {

using time_point = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;
using std::chrono::milliseconds;
using std::chrono::seconds;

class clock {
public:
    virtual ~clock() = default;

    virtual time_point now() const = 0;

    // Completes at or after `deadline` and yields true, or completes early
    // with false once `stop` is requested. The awaiter is resumed on the
    // embedder's event loop (or inline by a fake clock), never on a new thread.
    virtual task<bool> sleep_until(time_point deadline, std::stop_token stop = {}) = 0;
};

}  // namespace registry
