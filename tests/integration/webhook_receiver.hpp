// A real HTTP receiver for the webhook tests: a thread that accepts on a
// loopback port, reads each request (headers and a Content-Length body) and
// answers with the status the test sets, after the delay it sets. It can be
// stopped (the port refuses connections) and started again on the same port.
// With a certificate and key, it speaks https (OpenSSL, TLS 1.2+).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace it {

struct received_post {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // names lowercased
    std::string body;
    std::string header(const std::string& lowercase_name) const {
        auto i = headers.find(lowercase_name);
        return i == headers.end() ? std::string() : i->second;
    }
};

class webhook_receiver {
public:
    webhook_receiver();  // listening on 127.0.0.1, a free port
    // https with this certificate (PEM) and key.
    webhook_receiver(const std::filesystem::path& cert, const std::filesystem::path& key);
    ~webhook_receiver();
    webhook_receiver(const webhook_receiver&) = delete;
    webhook_receiver& operator=(const webhook_receiver&) = delete;

    std::uint16_t port() const { return port_; }
    // http://127.0.0.1:PORT/hook (https://localhost:PORT/hook with TLS: its certificate's name).
    std::string url(const std::string& path = "/hook") const;

    void stop();   // closes the port: connections are refused
    void start();  // listens on the same port again

    // What the next requests are answered with.
    void answer(int status) { status_ = status; }
    void delay(std::chrono::milliseconds d) { delay_ms_ = d.count(); }

    std::vector<received_post> posts() const;
    // Waits until `pred(posts())` holds; false after `timeout`.
    template <typename Pred>
    bool wait_until(Pred pred, std::chrono::milliseconds timeout) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return pred(posts_); });
    }

private:
    void listen();
    void serve();
    void handle(int fd);

    std::uint16_t port_ = 0;
    int listener_ = -1;
    void* tls_ = nullptr;  // SSL_CTX*, with a certificate
    std::thread thread_;
    std::atomic<bool> stopping_{false};
    std::atomic<int> status_{200};
    std::atomic<long long> delay_ms_{0};
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::vector<received_post> posts_;
};

}  // namespace it
