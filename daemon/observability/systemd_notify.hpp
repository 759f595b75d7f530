// Tells systemd about registryd's lifecycle when it runs as a Type=notify
// unit: READY=1 once it listens (so `systemctl start` returns when clients can
// connect, and units ordered after it start then), STOPPING=1 when it drains.
// The sd_notify(3) datagram protocol, written out (a few lines) rather than
// linking libsystemd: outside systemd, NOTIFY_SOCKET is unset and this does
// nothing.
#pragma once

#include <string_view>

namespace registryd {

// Sends `state` (e.g. "READY=1") to $NOTIFY_SOCKET, if set. Returns false if
// it is set and the datagram could not be sent; true otherwise.
bool notify_systemd(std::string_view state) noexcept;

}  // namespace registryd
