#include "etcd_cluster.hpp"

#include "deploy_support.hpp"

#include <atomic>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace it {

namespace {

constexpr const char* etcd_binary = "/usr/bin/etcd";

// A cluster token no other test's cluster has: members of two clusters
// that meet on a reused port refuse each other.
std::string unique_token() {
    static std::atomic<int> counter{0};
    return "registry-it-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + "-" +
           std::to_string(now_ms());
}

std::string tail_of(const std::filesystem::path& file, std::size_t max_bytes) {
    std::ifstream in(file);
    std::stringstream s;
    s << in.rdbuf();
    std::string text = s.str();
    return text.size() > max_bytes ? text.substr(text.size() - max_bytes) : text;
}

}  // namespace

etcd_cluster::etcd_cluster() : token_(unique_token()) {
    for (int attempt = 1;; ++attempt) {
        for (auto& m : members_) {
            m.client_port = deploy::free_port();
            m.peer_port = deploy::free_port();
        }
        try {
            for (std::size_t i = 0; i < size; ++i) start(i, false);
            for (std::size_t i = 0; i < size; ++i) wait_healthy(i);
            return;
        } catch (...) {
            stop_all();
            // Another process (a registryd on port 0, say) took a port between
            // free_port() and a member's bind: again on new ports, from scratch.
            if (attempt == 3 || logs(1 << 16).find("address already in use") == std::string::npos) throw;
            std::error_code ec;
            for (std::size_t i = 0; i < size; ++i) {
                std::filesystem::remove_all(dir_.path() / (name(i) + ".data"), ec);
                std::filesystem::remove(dir_.path() / (name(i) + ".log"), ec);
            }
            token_ = unique_token();
        }
    }
}

etcd_cluster::~etcd_cluster() { stop_all(); }

std::string etcd_cluster::client_url(std::size_t i) const {
    return "http://127.0.0.1:" + std::to_string(members_.at(i).client_port);
}

std::vector<std::string> etcd_cluster::client_urls() const {
    std::vector<std::string> urls;
    for (std::size_t i = 0; i < size; ++i) urls.push_back(client_url(i));
    return urls;
}

std::string etcd_cluster::peer_url(std::size_t i) const {
    return "http://127.0.0.1:" + std::to_string(members_.at(i).peer_port);
}

void etcd_cluster::start(std::size_t i, bool wait) {
    member& m = members_.at(i);
    if (m.pid > 0) throw failure("etcd_cluster: member " + name(i) + " is running");
    const std::filesystem::path d = dir_.path();
    const std::string data = (d / (name(i) + ".data")).string();
    const std::string logfile = (d / (name(i) + ".log")).string();
    std::string initial;
    for (std::size_t j = 0; j < size; ++j) initial += (j ? "," : "") + name(j) + "=" + peer_url(j);
    // With a data directory from an earlier start, etcd ignores the
    // --initial-* flags and rejoins with what it stored.
    std::vector<std::string> args{etcd_binary,
                                  "--name", name(i),
                                  "--data-dir", data,
                                  "--listen-client-urls", client_url(i),
                                  "--advertise-client-urls", client_url(i),
                                  "--listen-peer-urls", peer_url(i),
                                  "--initial-advertise-peer-urls", peer_url(i),
                                  "--initial-cluster", initial,
                                  "--initial-cluster-state", "new",
                                  "--initial-cluster-token", token_,
                                  // Short enough for fast tests, long enough that a loaded
                                  // two-core machine does not lose its leader by itself.
                                  "--heartbeat-interval", "100",
                                  "--election-timeout", "1000"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int fd = ::open(logfile.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        ::execv(etcd_binary, argv.data());
        ::_exit(127);
    }
    if (pid < 0) throw failure("etcd_cluster: fork failed");
    m.pid = pid;
    if (wait) wait_healthy(i);
}

void etcd_cluster::wait_healthy(std::size_t i, ms timeout) {
    member& m = members_.at(i);
    const auto deadline = steady::now() + scaled(timeout);
    for (;;) {
        http_response r;
        try {
            r = http_get("127.0.0.1", m.client_port, "/health", ms(1000));
        } catch (const std::exception&) {
        }
        if (r.status == 200 && r.body.find("\"true\"") != std::string::npos) return;
        int status = 0;
        if (m.pid > 0 && ::waitpid(m.pid, &status, WNOHANG) == m.pid) {
            m.pid = -1;
            throw failure("etcd member " + name(i) + " exited at start:\n" + logs());
        }
        if (m.pid <= 0) throw failure("etcd member " + name(i) + " is not running");
        if (steady::now() > deadline) throw failure("etcd member " + name(i) + " not healthy in time:\n" + logs());
        std::this_thread::sleep_for(50ms);
    }
}

void etcd_cluster::stop(std::size_t i) {
    member& m = members_.at(i);
    if (m.pid <= 0) return;
    ::kill(m.pid, SIGKILL);
    int status = 0;
    ::waitpid(m.pid, &status, 0);
    m.pid = -1;
}

void etcd_cluster::stop_all() {
    for (std::size_t i = 0; i < size; ++i) stop(i);
}

void etcd_cluster::start_all() {
    for (std::size_t i = 0; i < size; ++i) {
        if (members_[i].pid <= 0) start(i, false);
    }
    for (std::size_t i = 0; i < size; ++i) wait_healthy(i);
}

std::optional<std::size_t> etcd_cluster::leader() const {
    for (std::size_t i = 0; i < size; ++i) {
        if (members_[i].pid <= 0) continue;
        try {
            const http_response r = http_request("127.0.0.1", members_[i].client_port, "POST", "/v3/maintenance/status", ms(1000));
            if (r.status != 200) continue;
            const json::value v = parse(r.body);
            if (!has(v, "/leader")) continue;
            const std::string leader = str(v, "/leader");
            // Every member's id, from the member list that member answers.
            const http_response m = http_request("127.0.0.1", members_[i].client_port, "POST", "/v3/cluster/member/list", ms(1000));
            if (m.status != 200) continue;
            const json::value list = parse(m.body);
            for (const json::value& member : arr(list, "/members")) {
                if (str(member, "/ID") != leader) continue;
                const std::string who = str(member, "/name");
                for (std::size_t j = 0; j < size; ++j) {
                    if (who == name(j)) return j;
                }
            }
        } catch (const std::exception&) {
        }
    }
    return std::nullopt;
}

std::string etcd_cluster::logs(std::size_t max_bytes_each) const {
    std::string out;
    for (std::size_t i = 0; i < size; ++i) {
        out += "--- etcd " + name(i) + " (pid " + std::to_string(members_[i].pid) + ", " + client_url(i) + ")\n";
        out += tail_of(dir_.path() / (name(i) + ".log"), max_bytes_each);
    }
    return out;
}

}  // namespace it
