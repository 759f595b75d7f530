// registry::clock on an Asio io_context.
//
// now() is the system clock at millisecond precision. sleep_until() waits on
// a boost::asio::system_timer (deadlines are wall-clock times, see
// ports/clock.hpp) and resumes the sleeping coroutine from that timer's
// completion handler, i.e. on the io_context's thread. A stop request cancels
// the timer and the sleep yields false; the stop may be requested from any
// thread (the cancellation is posted to the io_context).
#pragma once

#include <registry/ports/clock.hpp>

namespace boost::asio {
class io_context;
}

namespace registryd {

class asio_clock final : public registry::clock {
public:
    explicit asio_clock(boost::asio::io_context& ioc) noexcept : ioc_(ioc) {}

    registry::time_point now() const override;
    registry::task<bool> sleep_until(registry::time_point deadline, std::stop_token stop = {}) override;

private:
    boost::asio::io_context& ioc_;
};

}  // namespace registryd
