#include "etcd_server.hpp"

#include "harness_tls.hpp"

#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace it {

namespace fs = std::filesystem;

namespace {

constexpr const char* etcd_binary = "/usr/bin/etcd";

}  // namespace

etcd_server::etcd_server(std::optional<etcd_tls_files> tls)
    : tls_(std::move(tls)), client_port_(free_port()), peer_port_(free_port()) {
    for (int attempt = 1;; ++attempt) {
        try {
            start();
            return;
        } catch (const failure&) {
            // Another process (a registryd on port 0, say) took a port between
            // free_port() and etcd's bind: again on new ports, from scratch.
            if (attempt == 3 || log().find("address already in use") == std::string::npos) throw;
            client_port_ = free_port();
            peer_port_ = free_port();
            std::error_code ec;
            fs::remove_all(dir_.path() / "data", ec);
        }
    }
}

etcd_server::~etcd_server() { stop(); }

std::string etcd_server::client_url() const {
    return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(client_port_);
}

void etcd_server::start() {
    const fs::path d = dir_.path();
    const std::string data = (d / "data").string();
    const std::string client = client_url();
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    const std::string logfile = (d / "etcd.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a test binary that died without its destructors
        const int fd = ::open(logfile.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        const std::string initial = "t=" + peer;
        std::vector<std::string> args{etcd_binary, "--name", "t", "--data-dir", data, "--listen-client-urls",
                                      client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
                                      "--initial-advertise-peer-urls", peer, "--initial-cluster", initial};
        if (tls_) {
            for (const std::string& a : {std::string("--cert-file"), tls_->cert_file.string(), std::string("--key-file"),
                                         tls_->key_file.string(), std::string("--trusted-ca-file"),
                                         tls_->trusted_ca_file.string(), std::string("--client-cert-auth")}) {
                args.push_back(a);
            }
        }
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(etcd_binary, argv.data());
        ::_exit(127);
    }
    if (pid_ < 0) throw failure("fork failed");
    // Up once the JSON gateway answers a range.
    const auto deadline = steady::now() + scaled(ms(20000));
    for (;;) {
        const http_response r = [&] {
            try {
                if (tls_) {
                    return https_get("127.0.0.1", client_port_, "/health",
                                     tls_options{tls_->trusted_ca_file, tls_->client_cert, tls_->client_key, ms(1000)});
                }
                return http_get("127.0.0.1", client_port_, "/health", ms(1000));
            } catch (const std::exception&) {
                return http_response{};
            }
        }();
        if (r.status == 200 && r.body.find("true") != std::string::npos) return;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw failure("etcd exited at start: " + log());
        }
        if (steady::now() > deadline) throw failure("etcd did not come up: " + log());
        ::usleep(50000);
    }
}

void etcd_server::stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

std::string etcd_server::log() const {
    std::ifstream in(dir_.path() / "etcd.log");
    std::stringstream s;
    s << in.rdbuf();
    std::string text = s.str();
    return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
}

}  // namespace it
