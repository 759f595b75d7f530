// Health-check scheduling under load (issue 20): 1,000 services, each with
// an HTTP check every second against a loopback server this bench runs;
// prints whether the checks hold their schedule (probes per second against
// the ideal, each probe's lateness behind its check's phase, the gaps
// between one instance's probes, the busiest 100 ms) and registryd's CPU
// (utime + stime from /proc/PID/stat) and RSS. Starts its own registryd (the integration harness's) and ends it.
// Figures only: it exits 0 whatever they are.
//
//   cmake -S . -B build/release -DREGISTRY_TESTS=ON -DREGISTRY_BENCH=ON
//   cmake --build build/release --target registryd health_bench
//   build/release/bench/health_bench [--services N] [--seconds S] [--https] [--max-probes N]
//
// --https: the server speaks TLS with a certificate of a test PKI whose CA
// registryd trusts (health.ca_file); every probe is a full handshake.
// --max-probes: registryd's health.max_concurrent_probes (default 64).
//
// Measured 2026-12-05 on the shared 2-core machine (load ~14), 60 s: 1000
// probes/s, lateness p50 0.1 ms / p99 64 ms, gaps p50 1000 ms / p99 1063 ms,
// registryd 7.6% of one core, 19.1 MiB RSS (docs/benchmarks.md, "Health checks").
#include "harness.hpp"
#include "harness_tls.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
namespace json = it::json;

namespace {

// Answers 200 to every request, recording when each path was asked for;
// one connection at a time per thread (blocking accepts on the one
// listening socket). Over TLS with `tls`, where 4 threads share the
// handshakes, so that the server is not what limits the probes.
class recording_server {
public:
    explicit recording_server(asio::ssl::context* tls = nullptr)
        : tls_(tls), acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        port_ = acceptor_.local_endpoint().port();
        for (int i = 0; i < (tls ? 4 : 1); ++i) threads_.emplace_back([this] { serve(); });
    }
    ~recording_server() {
        stopping_ = true;
        for (std::size_t i = 0; i < threads_.size(); ++i) {
            boost::system::error_code ec;
            tcp::socket wake(io_);
            wake.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);  // unblocks an accept()
        }
        for (auto& t : threads_) t.join();
    }
    std::uint16_t port() const { return port_; }
    std::map<std::string, std::vector<it::steady::time_point>> hits() {
        std::lock_guard lock(mutex_);
        return hits_;
    }

private:
    void serve() {
        static const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        while (!stopping_) {
            tcp::socket s(io_);
            boost::system::error_code ec;
            acceptor_.accept(s, ec);
            if (ec || stopping_) continue;
            asio::streambuf in;
            std::optional<asio::ssl::stream<tcp::socket&>> secure;
            if (tls_) {
                secure.emplace(s, *tls_);
                secure->handshake(asio::ssl::stream_base::server, ec);
                if (ec) continue;
                asio::read_until(*secure, in, "\r\n\r\n", ec);
            } else {
                asio::read_until(s, in, "\r\n\r\n", ec);
            }
            if (ec) continue;
            std::istream head(&in);
            std::string method, target;
            head >> method >> target;
            {
                std::lock_guard lock(mutex_);
                hits_[target].push_back(it::steady::now());
            }
            if (secure) {
                asio::write(*secure, asio::buffer(reply), ec);
                secure->shutdown(ec);
            } else {
                asio::write(s, asio::buffer(reply), ec);
            }
        }
    }

    asio::ssl::context* tls_;
    asio::io_context io_;
    tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::mutex mutex_;
    std::map<std::string, std::vector<it::steady::time_point>> hits_;
    std::vector<std::thread> threads_;
};

// utime + stime of `pid`, in seconds.
double cpu_seconds(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::istringstream rest(text.substr(text.rfind(')') + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15; ++i) {
        rest >> field;
        if (i == 14) utime = std::stoull(field);
        if (i == 15) stime = std::stoull(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// VmRSS of `pid`, in KiB.
long rss_kib(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
    int services = 1000;
    int seconds = 20;
    bool https = false;
    int max_probes = 64;  // registryd's default
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--https") https = true;
        if (i + 1 >= argc) continue;
        if (a == "--services") services = std::stoi(argv[i + 1]);
        if (a == "--seconds") seconds = std::stoi(argv[i + 1]);
        if (a == "--max-probes") max_probes = std::stoi(argv[i + 1]);
    }
    try {
        std::optional<it::test_pki> pki;
        std::optional<asio::ssl::context> tls;
        if (https) {
            pki.emplace("health bench CA");
            const auto cert = pki->server();
            tls.emplace(asio::ssl::context::tls_server);
            tls->use_certificate_chain_file(cert.cert.string());
            tls->use_private_key_file(cert.key.string(), asio::ssl::context::pem);
        }
        recording_server server(tls ? &*tls : nullptr);
        it::registryd d("health:\n  max_concurrent_probes: " + std::to_string(max_probes) + "\n" +
                        (https ? "  ca_file: " + pki->ca_cert().string() + "\n" : std::string()));
        it::ws_client w(d);
        for (int i = 0; i < services; ++i) {
            const std::string id = "svc-" + std::to_string(i);
            json::object svc = it::service("bench", id);
            svc["checks"] = json::array{json::object{
                {"name", "web"}, {"kind", "http"},
                {"url", std::string(https ? "https" : "http") + "://127.0.0.1:" + std::to_string(server.port()) + "/" + id},
                {"interval_ms", 1000}, {"timeout_ms", 500}}};
            w.call("register", it::registration(std::move(svc), 3600));
        }
        std::this_thread::sleep_for(3s);  // every check has had its first run
        const double cpu0 = cpu_seconds(d.pid());
        const double own0 = cpu_seconds(::getpid());
        const auto t0 = it::steady::now();
        std::this_thread::sleep_for(std::chrono::seconds(seconds));
        const double cpu1 = cpu_seconds(d.pid());
        const double own1 = cpu_seconds(::getpid());
        const auto t1 = it::steady::now();
        const double wall = std::chrono::duration<double>(t1 - t0).count();

        const long rss = rss_kib(d.pid());

        // Lateness: a check's n-th probe is due at its phase + n s; its
        // phase is taken as the earliest (probe time - n s) seen, so a probe
        // is late by how much it trails that.
        std::vector<double> gaps;
        std::vector<double> lateness;
        std::map<std::int64_t, int> per_tenth;
        std::size_t probes = 0;
        for (const auto& [path, times] : server.hits()) {
            std::vector<double> offsets;  // probe time - n s, ms since t0
            for (std::size_t k = 0; k < times.size(); ++k) {
                if (times[k] < t0 || times[k] >= t1) continue;
                ++probes;
                const double at = std::chrono::duration<double, std::milli>(times[k] - t0).count();
                ++per_tenth[static_cast<std::int64_t>(at) / 100];
                offsets.push_back(at - 1000.0 * static_cast<double>(offsets.size()));
                if (k > 0 && times[k - 1] >= t0) {
                    gaps.push_back(std::chrono::duration<double, std::milli>(times[k] - times[k - 1]).count());
                }
            }
            if (offsets.empty()) continue;
            const double phase = *std::min_element(offsets.begin(), offsets.end());
            for (double o : offsets) lateness.push_back(o - phase);
        }
        int busiest = 0;
        for (const auto& [tenth, n] : per_tenth) busiest = std::max(busiest, n);
        std::printf("health_bench: %d services, 1 s %s checks, %.1f s measured\n", services, https ? "HTTPS" : "HTTP",
                    wall);
        std::printf("  probes/s            %.0f (ideal %d: %.1f%%)\n", static_cast<double>(probes) / wall, services,
                    100.0 * static_cast<double>(probes) / wall / services);
        std::printf("  lateness            p50 %.1f ms, p99 %.1f ms, max %.1f ms (behind each check's own phase)\n",
                    percentile(lateness, 0.5), percentile(lateness, 0.99),
                    lateness.empty() ? 0.0 : *std::max_element(lateness.begin(), lateness.end()));
        std::printf("  gap between probes  p50 %.0f ms, p99 %.0f ms, max %.0f ms (ideal 1000)\n", percentile(gaps, 0.5),
                    percentile(gaps, 0.99), gaps.empty() ? 0.0 : *std::max_element(gaps.begin(), gaps.end()));
        std::printf("  busiest 100 ms      %d probes (even spread: %d)\n", busiest, services / 10);
        std::printf("  registryd CPU       %.1f%% of one core (%.2f s in %.1f s)\n", 100.0 * (cpu1 - cpu0) / wall,
                    cpu1 - cpu0, wall);
        std::printf("  registryd RSS       %.1f MiB\n", static_cast<double>(rss) / 1024.0);
        std::printf("  the server's CPU    %.1f%% of one core (this process)\n", 100.0 * (own1 - own0) / wall);
        d.terminate();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "health_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
