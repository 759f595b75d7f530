// The HTTP poster port: one POST to a URL, for webhook notifications
// (notifier.hpp). The embedder implements it (registryd: Beast over Asio,
// daemon/notify/beast_poster); library tests with a fake that answers what
// the test says. It never throws for a failure of the exchange: a refused
// connection, a timeout or a broken response is a result without a status.
#pragma once

#include <registry/ports/clock.hpp>
#include <registry/task.hpp>

#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

namespace registry {

struct http_post {
    std::string url;  // as configured (the embedder says which schemes it takes)
    std::vector<std::pair<std::string, std::string>> headers;  // besides Host, Content-Length
    std::shared_ptr<const std::string> body;
    milliseconds timeout{5000};  // the whole exchange: connect, send, the response's status and headers
};

struct http_post_result {
    std::optional<unsigned> status;  // the response's status code, when one came
    std::string error;               // without a status: what went wrong ("timed out", "connection refused")
};

class http_poster {
public:
    virtual ~http_poster() = default;

    // Completes with the response's status, or an error; early, with an
    // error, once `stop` is requested.
    virtual task<http_post_result> post(http_post request, std::stop_token stop) = 0;
};

}  // namespace registry
