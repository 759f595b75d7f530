// The answer to a WebSocket upgrade request (http/handshake), as the
// WebSocket session writes it: free of Beast.
#pragma once

#include <string>

namespace registryd {

struct upgrade_answer {
    bool accepted = false;
    std::string bytes;  // the HTTP response, 101 or the refusal
    std::string error;  // why it was refused
};

}  // namespace registryd
