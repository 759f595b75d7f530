// The answer to a WebSocket upgrade request (RFC 6455 §4.2): Beast's accept
// checks, in its order and with its messages (400 for a request that is not
// a valid upgrade or has a missing/malformed Sec-WebSocket-Key, 426 with
// Sec-WebSocket-Version: 13 for another version). No subprotocol and no
// extension is ever accepted (permessage-deflate is not offered back).
#pragma once

#include "http/upgrade_answer.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string_view>

namespace registryd {

// The Server field of every HTTP response registryd writes.
inline constexpr std::string_view server_name = "registryd";

upgrade_answer answer_upgrade(const boost::beast::http::request<boost::beast::http::string_body>& req);

}  // namespace registryd
