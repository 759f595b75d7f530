// regbench: the load generator of the benchmarks (bench/run.sh).
//
// One process, one thread, one io_context. Connections are opened with Beast
// (the WebSocket handshake, HTTP response parsing); on the hot path the
// generator writes and reads WebSocket frames itself, so that one read()
// drains every response that has arrived and one write() carries every
// request queued meanwhile: the generator must cost less per message than the
// cheapest server it drives (the echo baseline), on a machine whose two cores
// it shares with that server. Client frames are masked with the all-zero key
// (a valid mask: RFC 6455 only requires the client to mask).
//
// Modes (each prints one line of key=value figures on stdout):
//   ws        request/response over WebSocket: N connections, D requests in
//             flight on each, get_service or register; for a duration (after
//             a warm-up) or for a count of requests
//   http      the same over HTTP/1.1 keep-alive (pipelined) against etcd's
//             JSON gateway: range (read) or put with a lease (write)
//   fanout    N subscribers; one more connection registers services at an
//             interval; delivery latency of each event to each subscriber
//   idle      opens N WebSocket connections and measures the server's RSS
//             before and after
//   serve     forks and execs a server (pinned to a CPU), measures the time
//             from exec to the first successful read, then its idle RSS,
//             then stops it with SIGTERM and waits for it
//   wait      returns once a probe succeeds (a server is ready)
//   fsync     the latency of a 4 KiB append + fdatasync on a directory's disk
//   free-port prints a free TCP port of 127.0.0.1
// --tls-ca FILE (ws, idle): the connections are wss:// (Asio's SSL stream
// under the same raw framing; the upgrade request is written by hand),
// verifying the server's certificate with that CA.
// Everything is on loopback: the generator refuses any other address.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

//------------------------------------------------------------------------------
// Small utilities

std::uint64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "regbench: %s\n", what.c_str());
    std::fflush(stderr);
    std::_Exit(1);
}

// CPU seconds of a process: the sum over its threads of the nanosecond
// run time in /proc/PID/task/TID/schedstat (/proc/PID/stat counts in ticks
// of 10 ms, too coarse for a start-up of a few dozen ms).
double proc_cpu_seconds(pid_t pid) {
    const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
    std::error_code ec;
    unsigned long long ns = 0;
    for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
        std::ifstream in(t.path() / "schedstat");
        unsigned long long run = 0;
        if (in >> run) ns += run;
    }
    return static_cast<double>(ns) / 1e9;
}

// CPU seconds the whole machine spent busy (every process, every core).
double machine_busy_seconds() {
    std::ifstream in("/proc/stat");
    std::string cpu;
    unsigned long long v[8] = {};
    in >> cpu;
    for (auto& x : v) in >> x;
    const unsigned long long idle = v[3] + v[4];
    unsigned long long total = 0;
    for (auto x : v) total += x;
    return static_cast<double>(total - idle) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto sec = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
    return sec(ru.ru_utime) + sec(ru.ru_stime);
}

// VmRSS of a process in KiB, 0 if unknown.
long rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    }
    return 0;
}

void raise_fd_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

std::string base64(std::string_view in) {
    static constexpr char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                           static_cast<unsigned char>(in[i + 2]);
        out += tbl[(v >> 18) & 63];
        out += tbl[(v >> 12) & 63];
        out += tbl[(v >> 6) & 63];
        out += tbl[v & 63];
    }
    if (i < in.size()) {
        unsigned v = static_cast<unsigned char>(in[i]) << 16;
        if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
        out += tbl[(v >> 18) & 63];
        out += tbl[(v >> 12) & 63];
        out += i + 1 < in.size() ? tbl[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

// Latency histogram: exact below 64 ns, then 64 buckets per power of two
// (relative error under 1.6%). Values in nanoseconds.
class histogram {
public:
    histogram() : counts_(60 * 64, 0) {}

    void add(std::uint64_t v) {
        ++counts_[index(v)];
        ++total_;
        max_ = std::max(max_, v);
    }
    void reset() {
        std::fill(counts_.begin(), counts_.end(), 0);
        total_ = 0;
        max_ = 0;
    }
    std::uint64_t count() const { return total_; }
    std::uint64_t max() const { return max_; }

    // The upper edge of the bucket holding the q-quantile.
    std::uint64_t quantile(double q) const {
        if (total_ == 0) return 0;
        const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_) + 0.999999);
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= std::max<std::uint64_t>(rank, 1)) return std::min(upper(i), max_);
        }
        return max_;
    }

private:
    static std::size_t index(std::uint64_t v) {
        if (v < 64) return v;
        const int e = 63 - std::countl_zero(v);
        const int shift = e - 6;
        return static_cast<std::size_t>((shift + 1) * 64) + ((v >> shift) - 64);
    }
    static std::uint64_t upper(std::size_t i) {
        if (i < 64) return i;
        const std::size_t shift = i / 64 - 1;
        const std::uint64_t m = 64 + i % 64;
        return ((m + 1) << shift) - 1;
    }

    std::vector<std::uint64_t> counts_;
    std::uint64_t total_ = 0;
    std::uint64_t max_ = 0;
};

//------------------------------------------------------------------------------
// Options

struct options {
    std::string mode;
    std::string host = "127.0.0.1";
    int port = 0;
    std::string port_file;
    int conns = 64;
    int depth = 8;
    std::string action = "get";
    std::string prefix = "b";
    std::uint64_t pool = 1000;
    double duration = 10;
    double warmup = 2;
    std::uint64_t count = 0;  // stop after this many requests (instead of a duration)
    pid_t server_pid = 0;
    int subscribers = 1000;
    int registrations = 200;
    double interval_ms = 20;
    int connect_concurrency = 256;
    double settle = 1;
    int cpu = -1;
    std::string probe;  // serve: ws-get:INSTANCE or http-range:KEY
    std::string child_log;
    double timeout = 30;
    std::string dir;                   // fsync: where to write
    std::string params = "{}";         // request: the request's params (JSON)
    std::vector<std::string> command;  // serve: after --
    std::string tls_ca;                // ws, idle: wss:// with this CA
    // fanout: the subscribers' registryd, round robin (several registryd on
    // one etcd: the writer takes the registrations); empty: --port-file's.
    std::vector<std::string> subscribe_port_files;
};

// --tls-ca: the context every wss:// connection is made with (null: ws://).
std::unique_ptr<boost::asio::ssl::context> tls_ctx;

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: regbench MODE [options]\n"
                 "  ws     --port-file F|--port P --conns N --depth D --action get|register [--prefix S] [--pool K]\n"
                 "         [--duration S --warmup S | --count N] [--server-pid PID]\n"
                 "  http   --port P --conns N --depth D --action range|put [--prefix S] [--pool K]\n"
                 "         [--duration S --warmup S | --count N] [--server-pid PID]\n"
                 "  fanout --port-file F --subscribers N --registrations R --interval-ms MS [--server-pid PID]\n"
                 "         [--subscribe-port-files F1,F2,...]   (subscribers there, round robin)\n"
                 "  idle   --port-file F --conns N --server-pid PID [--settle S]\n"
                 "  (ws, idle: --tls-ca FILE for wss:// with that CA)\n"
                 "  serve  --port-file F|--port P --probe ws-get:INSTANCE|http-range:KEY [--cpu C] [--settle S]\n"
                 "         [--child-log FILE] -- COMMAND ARGS...   (probes also: ws-list, http-health)\n"
                 "  wait   --port-file F|--port P --probe PROBE [--timeout S]\n"
                 "  fsync  --dir D [--count N]   (4 KiB append + fdatasync, N times)\n"
                 "  request --port-file F|--port P --action A [--params JSON] [--timeout S]   (one request, timed)\n"
                 "  free-port\n");
    std::exit(2);
}

options parse(int argc, char** argv) {
    if (argc < 2) usage();
    options o;
    o.mode = argv[1];
    for (int i = 2; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--") {
            for (++i; i < argc; ++i) o.command.emplace_back(argv[i]);
            break;
        }
        if (i + 1 >= argc) usage();
        const std::string v = argv[++i];
        if (a == "--host") o.host = v;
        else if (a == "--port") o.port = std::stoi(v);
        else if (a == "--port-file") o.port_file = v;
        else if (a == "--conns") o.conns = std::stoi(v);
        else if (a == "--depth") o.depth = std::stoi(v);
        else if (a == "--action") o.action = v;
        else if (a == "--prefix") o.prefix = v;
        else if (a == "--pool") o.pool = std::stoull(v);
        else if (a == "--duration") o.duration = std::stod(v);
        else if (a == "--warmup") o.warmup = std::stod(v);
        else if (a == "--count") o.count = std::stoull(v);
        else if (a == "--server-pid") o.server_pid = static_cast<pid_t>(std::stol(v));
        else if (a == "--subscribers") o.subscribers = std::stoi(v);
        else if (a == "--registrations") o.registrations = std::stoi(v);
        else if (a == "--interval-ms") o.interval_ms = std::stod(v);
        else if (a == "--connect-concurrency") o.connect_concurrency = std::stoi(v);
        else if (a == "--settle") o.settle = std::stod(v);
        else if (a == "--cpu") o.cpu = std::stoi(v);
        else if (a == "--probe") o.probe = v;
        else if (a == "--child-log") o.child_log = v;
        else if (a == "--timeout") o.timeout = std::stod(v);
        else if (a == "--dir") o.dir = v;
        else if (a == "--params") o.params = v;
        else if (a == "--tls-ca") o.tls_ca = v;
        else if (a == "--subscribe-port-files") {
            for (std::size_t at = 0; at <= v.size();) {
                const auto comma = std::min(v.find(',', at), v.size());
                if (comma > at) o.subscribe_port_files.push_back(v.substr(at, comma - at));
                at = comma + 1;
            }
        }
        else usage();
    }
    // Loopback only.
    const auto addr = asio::ip::make_address(o.host);
    if (!addr.is_loopback()) die("refusing a non-loopback host: " + o.host);
    return o;
}

// The port: --port, or read from --port-file (waiting up to `timeout` s for it).
int resolve_port(const options& o) {
    if (o.port > 0) return o.port;
    if (o.port_file.empty()) die("--port or --port-file is required");
    const auto deadline = now_ns() + static_cast<std::uint64_t>(o.timeout * 1e9);
    while (now_ns() < deadline) {
        std::ifstream in(o.port_file);
        std::string line;
        if (in && std::getline(in, line) && !line.empty()) {
            const auto colon = line.rfind(':');
            if (colon != std::string::npos) return std::stoi(line.substr(colon + 1));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    die("no port file " + o.port_file);
}

//------------------------------------------------------------------------------
// Request texts

std::string service_json(std::string_view instance) {
    std::string s;
    s.reserve(256);
    s += R"({"name":"bench","instance_id":")";
    s += instance;
    s += R"(","version":"1.0.0","endpoints":[{"name":"http","address":"127.0.0.1","port":8080,"protocol":"http"}],)";
    s += R"("metadata":{"team":"bench"}})";
    return s;
}

std::string instance_name(const options& o, std::uint64_t k) { return o.prefix + std::to_string(k); }

std::string etcd_key(std::string_view instance) { return "/registry/services/bench/" + std::string(instance); }

//------------------------------------------------------------------------------
// The shared state of one run

struct run_state {
    const options& opt;
    asio::io_context& io;
    histogram hist;
    bool measuring = false;
    bool stopping = false;
    std::uint64_t issued = 0;     // requests handed to a connection
    std::uint64_t completed = 0;  // responses during the measurement
    std::uint64_t errors = 0;     // error responses during the measurement
    std::uint64_t all_completed = 0;
    std::uint64_t resp_bytes = 0;  // size of the last successful response
    std::string first_error;
    std::uint64_t t_start = 0, t_end = 0;
    double cpu_self0 = 0, cpu_self1 = 0, cpu_srv0 = 0, cpu_srv1 = 0, busy0 = 0, busy1 = 0;
    std::function<void()> on_count_reached;

    run_state(const options& o, asio::io_context& i) : opt(o), io(i) {}

    bool may_issue() {
        if (stopping) return false;
        if (opt.count > 0 && issued >= opt.count) return false;
        ++issued;
        return true;
    }

    void begin_measure() {
        measuring = true;
        hist.reset();
        completed = errors = 0;
        t_start = now_ns();
        cpu_self0 = self_cpu_seconds();
        busy0 = machine_busy_seconds();
        if (opt.server_pid > 0) cpu_srv0 = proc_cpu_seconds(opt.server_pid);
    }
    void end_measure() {
        if (!measuring) return;
        measuring = false;
        t_end = now_ns();
        cpu_self1 = self_cpu_seconds();
        busy1 = machine_busy_seconds();
        if (opt.server_pid > 0) cpu_srv1 = proc_cpu_seconds(opt.server_pid);
    }

    void done(std::uint64_t latency_ns, bool ok, std::size_t bytes, std::string_view body) {
        ++all_completed;
        if (measuring) {
            ++completed;
            hist.add(latency_ns);
            if (!ok) ++errors;
        }
        if (ok) {
            resp_bytes = bytes;
        } else if (first_error.empty()) {
            first_error = std::string(body.substr(0, 300));
        }
        if (opt.count > 0 && all_completed == opt.count && on_count_reached) on_count_reached();
    }

    void print(const char* extra = "") const {
        const double secs = static_cast<double>(t_end - t_start) / 1e9;
        std::printf(
            "ok=1 requests=%llu errors=%llu seconds=%.3f rps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
            "resp_bytes=%llu gen_cpu_pct=%.1f srv_cpu_pct=%.1f other_cpu_pct=%.1f%s\n",
            static_cast<unsigned long long>(completed), static_cast<unsigned long long>(errors), secs,
            static_cast<double>(completed) / secs, static_cast<double>(hist.quantile(0.50)) / 1e3,
            static_cast<double>(hist.quantile(0.99)) / 1e3, static_cast<double>(hist.quantile(0.999)) / 1e3,
            static_cast<double>(hist.max()) / 1e3, static_cast<unsigned long long>(resp_bytes),
            100.0 * (cpu_self1 - cpu_self0) / secs, opt.server_pid > 0 ? 100.0 * (cpu_srv1 - cpu_srv0) / secs : 0.0,
            std::max(0.0, 100.0 * ((busy1 - busy0) - (cpu_self1 - cpu_self0) - (cpu_srv1 - cpu_srv0)) / secs), extra);
        if (!first_error.empty()) std::fprintf(stderr, "regbench: first error response: %s\n", first_error.c_str());
        std::fflush(stdout);
    }
};

//------------------------------------------------------------------------------
// A raw connection: reads into a growing buffer, writes batched bytes.

class raw_conn {
public:
    raw_conn(asio::io_context& io, std::size_t read_buffer) : sock_(io), cap_(read_buffer) {}
    virtual ~raw_conn() = default;
    raw_conn(const raw_conn&) = delete;
    raw_conn& operator=(const raw_conn&) = delete;

    tcp::socket& socket() { return tls_ ? tls_->next_layer() : sock_; }

    void close() {
        closed_ = true;
        error_code ignored;
        socket().close(ignored);
    }

protected:
    // Handles every complete unit in [p, p+n); returns the bytes consumed.
    virtual std::size_t on_data(const char* p, std::size_t n) = 0;
    virtual void on_error(const error_code& ec, const char* op) = 0;

    void start_reading() { do_read(); }

    // wss://: the connected socket moves under an SSL stream; then `done`.
    template <typename Done>
    void start_tls(Done done) {
        tls_ = std::make_unique<asio::ssl::stream<tcp::socket>>(std::move(sock_), *tls_ctx);
        tls_->async_handshake(asio::ssl::stream_base::client, std::move(done));
    }
    bool tls() const { return tls_ != nullptr; }

    // Appends to the pending output; written at once unless inside on_data
    // (then once every unit of the read has been handled).
    std::string& out() { return pending_; }
    void flush() {
        if (in_data_ || writing_ || pending_.empty() || closed_) return;
        writing_ = true;
        std::swap(wbuf_, pending_);
        pending_.clear();
        auto written = [this](const error_code& ec, std::size_t) {
            writing_ = false;
            if (ec) {
                if (!closed_) on_error(ec, "write");
                return;
            }
            flush();
        };
        if (tls_) {
            asio::async_write(*tls_, asio::buffer(wbuf_), written);
        } else {
            asio::async_write(sock_, asio::buffer(wbuf_), written);
        }
    }

    bool closed_ = false;

private:
    void do_read() {
        if (closed_) return;
        if (!buf_) buf_.reset(new char[cap_]);
        if (len_ == cap_) {
            std::unique_ptr<char[]> bigger(new char[cap_ * 2]);
            std::memcpy(bigger.get(), buf_.get(), len_);
            buf_ = std::move(bigger);
            cap_ *= 2;
        }
        auto read = [this](const error_code& ec, std::size_t n) { on_read(ec, n); };
        if (tls_) {
            tls_->async_read_some(asio::buffer(buf_.get() + len_, cap_ - len_), read);
        } else {
            sock_.async_read_some(asio::buffer(buf_.get() + len_, cap_ - len_), read);
        }
    }

    void on_read(const error_code& ec, std::size_t n) {
        if (ec) {
            if (!closed_) on_error(ec, "read");
            return;
        }
        len_ += n;
        in_data_ = true;
        const std::size_t used = on_data(buf_.get(), len_);
        in_data_ = false;
        if (closed_) return;
        if (used > 0) {
            std::memmove(buf_.get(), buf_.get() + used, len_ - used);
            len_ -= used;
        }
        flush();
        do_read();
    }

    tcp::socket sock_;
    std::unique_ptr<asio::ssl::stream<tcp::socket>> tls_;
    std::unique_ptr<char[]> buf_;
    std::size_t cap_;
    std::size_t len_ = 0;
    std::string pending_, wbuf_;
    bool writing_ = false;
    bool in_data_ = false;
};

//------------------------------------------------------------------------------
// WebSocket client connection: Beast handshake, then raw frames.

// With REGISTRY_TOKEN set, every upgrade carries Authorization: Bearer (a
// registryd with `auth`; the get_service_auth scenario).
template <typename Stream>
void present_token(Stream& ws) {
    static const char* const token = std::getenv("REGISTRY_TOKEN");
    if (!token || !*token) return;
    ws.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
        req.set(beast::http::field::authorization, std::string("Bearer ") + token);
    }));
}

void append_client_frame(std::string& out, std::string_view payload, unsigned opcode = 1) {
    const std::size_t n = payload.size();
    out.push_back(static_cast<char>(0x80 | opcode));
    if (n < 126) {
        out.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
        out.push_back(static_cast<char>(0x80 | 126));
        out.push_back(static_cast<char>(n >> 8));
        out.push_back(static_cast<char>(n & 0xff));
    } else {
        out.push_back(static_cast<char>(0x80 | 127));
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    }
    out.append(4, '\0');  // masking key 0: the payload goes as it is
    out.append(payload);
}

class ws_conn : public raw_conn {
public:
    ws_conn(asio::io_context& io, std::size_t read_buffer) : raw_conn(io, read_buffer), io_(io) {}

    // Connects and does the opening handshake; then on_open().
    void start(const tcp::endpoint& ep) {
        hs_.emplace(io_);
        socket().async_connect(ep, [this, ep](const error_code& ec) {
            if (ec) return on_error(ec, "connect");
            error_code ignored;
            socket().set_option(tcp::no_delay(true), ignored);
            if (tls_ctx) {
                hs_.reset();
                start_tls([this, ep](const error_code& e) {
                    if (e) return on_error(e, "tls handshake");
                    upgrading_ = true;
                    start_reading();
                    out() += "GET / HTTP/1.1\r\nHost: " + ep.address().to_string() + ":" + std::to_string(ep.port()) +
                             "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
                    flush();
                });
                return;
            }
            hs_->next_layer() = std::move(socket());
            present_token(*hs_);
            hs_->async_handshake(ep.address().to_string() + ":" + std::to_string(ep.port()), "/",
                                 [this](const error_code& e) {
                                     if (e) return on_error(e, "handshake");
                                     socket() = std::move(hs_->next_layer());
                                     hs_.reset();
                                     start_reading();
                                     on_open();
                                 });
        });
    }

protected:
    virtual void on_open() = 0;
    virtual void on_message(std::string_view msg) = 0;

    void send_text(std::string_view payload) {
        append_client_frame(out(), payload);
        flush();
    }

private:
    std::size_t on_data(const char* p, std::size_t n) override {
        std::size_t off = 0;
        if (upgrading_) {  // wss://: the answer to the hand-written upgrade
            const std::string_view head(p, n);
            const auto end = head.find("\r\n\r\n");
            if (end == std::string_view::npos) return 0;
            if (head.substr(0, 12) != "HTTP/1.1 101") die("wss upgrade refused");
            upgrading_ = false;
            off = end + 4;
            on_open();
        }
        while (n - off >= 2 && !closed_) {
            const auto b0 = static_cast<unsigned char>(p[off]);
            const auto b1 = static_cast<unsigned char>(p[off + 1]);
            std::uint64_t len = b1 & 0x7f;
            std::size_t h = 2;
            if (len == 126) {
                if (n - off < 4) break;
                len = (static_cast<unsigned>(static_cast<unsigned char>(p[off + 2])) << 8) |
                      static_cast<unsigned char>(p[off + 3]);
                h = 4;
            } else if (len == 127) {
                if (n - off < 10) break;
                len = 0;
                for (int i = 2; i < 10; ++i) len = (len << 8) | static_cast<unsigned char>(p[off + i]);
                h = 10;
            }
            if (b1 & 0x80) die("server frame is masked");
            if (n - off < h + len) break;
            const std::string_view payload(p + off + h, len);
            off += h + len;
            const unsigned opcode = b0 & 0x0f;
            const bool fin = b0 & 0x80;
            if (opcode == 0x9) {  // ping
                append_client_frame(out(), payload, 0xA);
            } else if (opcode == 0x8) {  // close
                append_client_frame(out(), payload.substr(0, 2), 0x8);
                closed_by_peer_ = true;
            } else if (opcode == 0xA) {  // pong
            } else if (opcode == 0x0 || !fin) {  // fragments
                frag_.append(payload);
                if (fin) {
                    on_message(frag_);
                    frag_.clear();
                }
            } else {
                on_message(payload);
            }
        }
        return off;
    }

    asio::io_context& io_;
    std::optional<websocket::stream<tcp::socket>> hs_;
    std::string frag_;
    bool closed_by_peer_ = false;
    bool upgrading_ = false;
};

// The id of a response ({"id":"<id>",...}) and whether it is a success.
struct response_info {
    std::string_view id;
    bool is_response = false;
    bool ok = false;
};

response_info inspect_response(std::string_view msg) {
    response_info r;
    constexpr std::string_view head = "{\"id\":\"";
    if (msg.substr(0, head.size()) != head) return r;  // an event, or id:null
    const auto end = msg.find('"', head.size());
    if (end == std::string_view::npos) return r;
    r.id = msg.substr(head.size(), end - head.size());
    r.is_response = true;
    constexpr std::string_view rest = "\",\"type\":\"response\",\"data\"";
    r.ok = msg.substr(end, rest.size()) == rest;
    return r;
}

//------------------------------------------------------------------------------
// ws mode: pipelined request/response

class ws_rr_conn final : public ws_conn {
public:
    ws_rr_conn(run_state& st, int index) : ws_conn(st.io, 64 * 1024), st_(st), index_(index) {
        sent_.resize(static_cast<std::size_t>(st.opt.depth), 0);
    }

private:
    void on_open() override {
        for (int s = 0; s < st_.opt.depth; ++s) issue(static_cast<std::size_t>(s));
        flush();
    }

    void issue(std::size_t slot) {
        if (!st_.may_issue()) return;
        const std::uint64_t seq = st_.issued - 1;
        req_.clear();
        req_ += "{\"id\":\"";
        req_ += std::to_string(slot);
        if (st_.opt.action == "get") {
            req_ += R"(","type":"request","action":"get_service","params":{"instance_id":")";
            req_ += instance_name(st_.opt, seq % st_.opt.pool);
            req_ += "\"}}";
        } else {
            req_ += R"(","type":"request","action":"register","params":{"service":)";
            req_ += service_json(instance_name(st_.opt, seq));
            req_ += R"(,"ttl_seconds":3600}})";
        }
        sent_[slot] = now_ns();
        append_client_frame(out(), req_);  // written by the caller's flush()
    }

    void on_message(std::string_view msg) override {
        const auto r = inspect_response(msg);
        std::size_t slot = 0;
        if (!r.is_response ||
            std::from_chars(r.id.data(), r.id.data() + r.id.size(), slot).ec != std::errc{} || slot >= sent_.size()) {
            die("unexpected frame: " + std::string(msg.substr(0, 200)));
        }
        st_.done(now_ns() - sent_[slot], r.ok, msg.size(), msg);
        issue(slot);
    }

    void on_error(const error_code& ec, const char* op) override {
        if (st_.stopping) return;
        die("connection " + std::to_string(index_) + ": " + op + ": " + ec.message());
    }

    run_state& st_;
    int index_;
    std::vector<std::uint64_t> sent_;
    std::string req_;
};

//------------------------------------------------------------------------------
// http mode: pipelined HTTP/1.1 keep-alive against etcd's JSON gateway

class http_rr_conn final : public raw_conn {
public:
    http_rr_conn(run_state& st, int index) : raw_conn(st.io, 64 * 1024), st_(st), index_(index) {}

    void start(const tcp::endpoint& ep) {
        socket().async_connect(ep, [this](const error_code& ec) {
            if (ec) return on_error(ec, "connect");
            error_code ignored;
            socket().set_option(tcp::no_delay(true), ignored);
            start_reading();
            if (st_.opt.action == "put") {
                // One lease per connection, granted before the measurement.
                post("/v3/lease/grant", R"({"TTL":"3600"})");
                granting_ = true;
            } else {
                fill();
            }
            flush();
        });
    }

private:
    void fill() {
        for (int i = 0; i < st_.opt.depth; ++i) issue();
    }

    void post(std::string_view path, std::string_view body) {
        auto& o = out();
        o += "POST ";
        o += path;
        o += " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ";
        o += std::to_string(body.size());
        o += "\r\n\r\n";
        o += body;
        sent_.push_back(now_ns());
    }

    void issue() {
        if (!st_.may_issue()) return;
        const std::uint64_t seq = st_.issued - 1;
        body_.clear();
        if (st_.opt.action == "range") {
            const std::string inst = instance_name(st_.opt, seq % st_.opt.pool);
            // Serializable: served from the member's own state, like
            // registryd's reads (linearizable would add a raft round).
            body_ += R"({"key":")" + base64(etcd_key(inst)) + R"(","serializable":true})";
            post("/v3/kv/range", body_);
        } else {
            const std::string inst = instance_name(st_.opt, seq);
            body_ += R"({"key":")" + base64(etcd_key(inst)) + R"(","value":")" + base64(service_json(inst)) +
                     R"(","lease":")" + lease_ + "\"}";
            post("/v3/kv/put", body_);
        }  // written by the caller's flush()
    }

    std::size_t on_data(const char* p, std::size_t n) override {
        std::size_t off = 0;
        while (off < n) {
            if (!parser_) {
                parser_.emplace();
                parser_->eager(true);
                parser_->body_limit(64 * 1024 * 1024);
            }
            error_code ec;
            const std::size_t used = parser_->put(asio::buffer(p + off, n - off), ec);
            off += used;
            if (ec == http::error::need_more) {
                if (used == 0) break;
                continue;
            }
            if (ec) die("http parse: " + ec.message());
            if (!parser_->is_done()) {
                if (used == 0) break;
                continue;
            }
            on_response(parser_->get());
            parser_.reset();
        }
        return off;
    }

    void on_response(const http::response<http::string_body>& res) {
        if (sent_.empty()) die("response without a request");
        const std::uint64_t t = sent_.front();
        sent_.pop_front();
        const std::string& body = res.body();
        if (granting_) {
            granting_ = false;
            const auto at = body.find("\"ID\":\"");
            if (res.result() != http::status::ok || at == std::string::npos) die("lease grant failed: " + body);
            const auto start = at + 6;
            lease_ = body.substr(start, body.find('"', start) - start);
            fill();
            return;
        }
        bool ok = res.result() == http::status::ok;
        if (ok && st_.opt.action == "range") ok = body.find("\"kvs\"") != std::string::npos;
        std::size_t bytes = body.size();
        st_.done(now_ns() - t, ok, bytes, body);
        issue();
    }

    void on_error(const error_code& ec, const char* op) override {
        if (st_.stopping) return;
        die("http connection " + std::to_string(index_) + ": " + op + ": " + ec.message());
    }

    run_state& st_;
    int index_;
    std::deque<std::uint64_t> sent_;
    std::optional<http::response_parser<http::string_body>> parser_;
    std::string body_;
    std::string lease_;
    bool granting_ = false;
};

// Runs ws or http request/response mode.
template <typename Conn>
int run_rr(const options& o) {
    asio::io_context io{1};
    run_state st(o, io);
    const tcp::endpoint ep(asio::ip::make_address(o.host), static_cast<unsigned short>(resolve_port(o)));
    std::vector<std::unique_ptr<Conn>> conns;
    for (int i = 0; i < o.conns; ++i) conns.push_back(std::make_unique<Conn>(st, i));
    for (auto& c : conns) c->start(ep);

    asio::steady_timer timer(io);
    if (o.count > 0) {
        st.begin_measure();
        st.on_count_reached = [&] {
            st.end_measure();
            st.stopping = true;
            io.stop();
        };
    } else {
        timer.expires_after(std::chrono::microseconds(static_cast<std::int64_t>(o.warmup * 1e6)));
        timer.async_wait([&](const error_code&) {
            st.begin_measure();
            timer.expires_after(std::chrono::microseconds(static_cast<std::int64_t>(o.duration * 1e6)));
            timer.async_wait([&](const error_code&) {
                st.end_measure();
                st.stopping = true;
                io.stop();
            });
        });
    }
    io.run();
    st.print();
    for (auto& c : conns) c->close();
    return 0;
}

//------------------------------------------------------------------------------
// fanout mode

struct fanout_state {
    const options& opt;
    asio::io_context& io;
    histogram delivery;   // send of the register request -> receipt by one subscriber
    histogram to_all;     // send -> receipt by the last subscriber
    histogram response;   // send -> register response
    histogram first;      // send -> receipt by the first subscriber (the change is durable)
    histogram spread;     // receipt by the first subscriber -> receipt by this one
    std::vector<std::uint64_t> sent;
    std::vector<std::uint64_t> first_at;
    std::string key;  // "instance_id":"<prefix>
    std::vector<std::uint64_t> last;
    std::vector<int> delivered;
    int opened = 0, subscribed = 0, failed = 0, registrations_done = 0;
    std::uint64_t deliveries = 0;
    double cpu_self0 = 0, cpu_srv0 = 0, busy0 = 0;
    std::uint64_t t0 = 0;
    std::function<void()> all_subscribed;
    std::function<void()> next_connect;

    fanout_state(const options& o, asio::io_context& i) : opt(o), io(i) {}

    void on_event(std::string_view msg) {
        constexpr std::string_view kind = "\"event\":\"service_registered\"";
        if (msg.find(kind) == std::string_view::npos) return;
        const auto at = msg.find(key);
        if (at == std::string_view::npos) return;
        std::size_t k = 0;
        const char* start = msg.data() + at + key.size();
        if (std::from_chars(start, msg.data() + msg.size(), k).ec != std::errc{} || k >= sent.size()) return;
        const std::uint64_t t = now_ns();
        delivery.add(t - sent[k]);
        if (first_at[k] == 0) {
            first_at[k] = t;
            first.add(t - sent[k]);
        }
        spread.add(t - first_at[k]);
        last[k] = std::max(last[k], t);
        ++deliveries;
        if (++delivered[k] == opt.subscribers) {
            to_all.add(last[k] - sent[k]);
            if (++registrations_done == opt.registrations) io.stop();
        }
    }
};

class subscriber_conn final : public ws_conn {
public:
    subscriber_conn(fanout_state& st) : ws_conn(st.io, 16 * 1024), st_(st) {}

private:
    void on_open() override {
        ++st_.opened;
        send_text(R"({"id":"sub","type":"request","action":"subscribe","params":{"snapshot":false,"events":["service_registered"]}})");
        st_.next_connect();
    }
    void on_message(std::string_view msg) override {
        if (msg.substr(0, 10) == "{\"id\":\"sub") {
            if (inspect_response(msg).ok) {
                if (++st_.subscribed == st_.opt.subscribers) st_.all_subscribed();
            } else {
                die("subscribe failed: " + std::string(msg));
            }
            return;
        }
        st_.on_event(msg);
    }
    void on_error(const error_code& ec, const char* op) override {
        die(std::string("subscriber: ") + op + ": " + ec.message());
    }
    fanout_state& st_;
};

class registrant_conn final : public ws_conn {
public:
    registrant_conn(fanout_state& st) : ws_conn(st.io, 16 * 1024), st_(st), timer_(st.io) {}

    void begin() { tick(); }

private:
    void on_open() override {}

    void tick() {
        if (next_ >= st_.opt.registrations) return;
        const int k = next_++;
        std::string req = R"({"id":")" + std::to_string(k) +
                          R"(","type":"request","action":"register","params":{"service":)" +
                          service_json(instance_name(st_.opt, static_cast<std::uint64_t>(k))) + R"(,"ttl_seconds":3600}})";
        st_.sent[static_cast<std::size_t>(k)] = now_ns();
        send_text(req);
        timer_.expires_after(std::chrono::microseconds(static_cast<std::int64_t>(st_.opt.interval_ms * 1000)));
        timer_.async_wait([this](const error_code& ec) {
            if (!ec) tick();
        });
    }

    void on_message(std::string_view msg) override {
        const auto r = inspect_response(msg);
        if (!r.is_response) return;
        if (!r.ok) die("register failed: " + std::string(msg));
        std::size_t k = 0;
        std::from_chars(r.id.data(), r.id.data() + r.id.size(), k);
        if (k < st_.sent.size()) st_.response.add(now_ns() - st_.sent[k]);
    }
    void on_error(const error_code& ec, const char* op) override {
        die(std::string("registrant: ") + op + ": " + ec.message());
    }

    fanout_state& st_;
    asio::steady_timer timer_;
    int next_ = 0;
};

int run_fanout(const options& o) {
    asio::io_context io{1};
    fanout_state st(o, io);
    const auto R = static_cast<std::size_t>(o.registrations);
    st.sent.assign(R, 0);
    st.last.assign(R, 0);
    st.first_at.assign(R, 0);
    st.key = "\"instance_id\":\"" + o.prefix;
    st.delivered.assign(R, 0);
    const tcp::endpoint ep(asio::ip::make_address(o.host), static_cast<unsigned short>(resolve_port(o)));

    std::vector<tcp::endpoint> sub_eps;
    for (const auto& f : o.subscribe_port_files) {
        options other = o;
        other.port = 0;
        other.port_file = f;
        sub_eps.emplace_back(asio::ip::make_address(o.host), static_cast<unsigned short>(resolve_port(other)));
    }
    if (sub_eps.empty()) sub_eps.push_back(ep);

    std::vector<std::unique_ptr<subscriber_conn>> subs;
    for (int i = 0; i < o.subscribers; ++i) subs.push_back(std::make_unique<subscriber_conn>(st));
    std::size_t next = 0;
    st.next_connect = [&] {
        if (next < subs.size()) {
            subs[next]->start(sub_eps[next % sub_eps.size()]);
            ++next;
        }
    };
    registrant_conn reg(st);
    reg.start(ep);
    asio::steady_timer pause(io), deadline(io);
    st.all_subscribed = [&] {
        // Let the subscription handshakes settle, then register.
        pause.expires_after(std::chrono::milliseconds(300));
        pause.async_wait([&](const error_code&) {
            st.t0 = now_ns();
            st.cpu_self0 = self_cpu_seconds();
            st.busy0 = machine_busy_seconds();
            if (o.server_pid > 0) st.cpu_srv0 = proc_cpu_seconds(o.server_pid);
            reg.begin();
            const double budget_ms = o.interval_ms * o.registrations + 5000;
            deadline.expires_after(std::chrono::milliseconds(static_cast<std::int64_t>(budget_ms)));
            deadline.async_wait([&](const error_code& ec) {
                if (!ec) io.stop();
            });
        });
    };
    for (int i = 0; i < std::min(o.connect_concurrency, o.subscribers); ++i) st.next_connect();
    io.run();
    const double secs = static_cast<double>(now_ns() - st.t0) / 1e9;
    const double gen_cpu = self_cpu_seconds() - st.cpu_self0;
    const double srv_cpu = o.server_pid > 0 ? proc_cpu_seconds(o.server_pid) - st.cpu_srv0 : 0;
    const double other_cpu = std::max(0.0, machine_busy_seconds() - st.busy0 - gen_cpu - srv_cpu);
    const auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e3; };
    std::printf(
        "ok=%d subscribers=%d registrations=%d complete=%d deliveries=%llu p50_us=%.1f p99_us=%.1f p999_us=%.1f "
        "max_us=%.1f all_p50_us=%.1f all_p99_us=%.1f all_max_us=%.1f resp_p50_us=%.1f resp_p99_us=%.1f "
        "first_p50_us=%.1f first_p99_us=%.1f spread_p50_us=%.1f spread_p99_us=%.1f "
        "gen_cpu_pct=%.1f srv_cpu_pct=%.1f other_cpu_pct=%.1f srv_cpu_ms_per_event=%.2f\n",
        st.registrations_done == o.registrations ? 1 : 0, o.subscribers, o.registrations, st.registrations_done,
        static_cast<unsigned long long>(st.deliveries), us(st.delivery.quantile(0.5)), us(st.delivery.quantile(0.99)),
        us(st.delivery.quantile(0.999)), us(st.delivery.max()), us(st.to_all.quantile(0.5)),
        us(st.to_all.quantile(0.99)), us(st.to_all.max()), us(st.response.quantile(0.5)),
        us(st.response.quantile(0.99)), us(st.first.quantile(0.5)), us(st.first.quantile(0.99)),
        us(st.spread.quantile(0.5)), us(st.spread.quantile(0.99)), 100 * gen_cpu / secs, 100 * srv_cpu / secs,
        100 * other_cpu / secs, 1e3 * srv_cpu / std::max(1, st.registrations_done));
    std::fflush(stdout);
    for (auto& s : subs) s->close();
    reg.close();
    return 0;
}

//------------------------------------------------------------------------------
// idle mode

class idle_conn final : public ws_conn {
public:
    idle_conn(asio::io_context& io, std::function<void(bool)> opened)
        : ws_conn(io, 512), opened_(std::move(opened)) {}

private:
    void on_open() override { opened_(true); }
    void on_message(std::string_view) override {}
    void on_error(const error_code& ec, const char* op) override {
        if (!open_reported_) {
            std::fprintf(stderr, "regbench: idle connection %s: %s\n", op, ec.message().c_str());
            open_reported_ = true;
            opened_(false);
        }
    }
    std::function<void(bool)> opened_;
    bool open_reported_ = false;
};

int run_idle(const options& o) {
    if (o.server_pid <= 0) die("idle needs --server-pid");
    asio::io_context io{1};
    const tcp::endpoint ep(asio::ip::make_address(o.host), static_cast<unsigned short>(resolve_port(o)));
    const long rss0 = rss_kib(o.server_pid);
    std::vector<std::unique_ptr<idle_conn>> conns;
    int ok = 0, failed = 0;
    std::size_t next = 0;
    asio::steady_timer settle(io);
    const std::uint64_t t0 = now_ns();
    std::uint64_t t_open = 0;
    std::function<void()> connect_next;
    auto opened = [&](bool good) {
        good ? ++ok : ++failed;
        if (ok + failed == o.conns) {
            t_open = now_ns();
            settle.expires_after(std::chrono::milliseconds(static_cast<std::int64_t>(o.settle * 1000)));
            settle.async_wait([&](const error_code&) { io.stop(); });
        } else {
            connect_next();
        }
    };
    for (int i = 0; i < o.conns; ++i) conns.push_back(std::make_unique<idle_conn>(io, opened));
    connect_next = [&] {
        if (next < conns.size()) conns[next++]->start(ep);
    };
    for (int i = 0; i < std::min(o.connect_concurrency, o.conns); ++i) connect_next();
    io.run();
    const long rss1 = rss_kib(o.server_pid);
    std::printf("ok=%d conns=%d failed=%d open_seconds=%.2f rss_before_kib=%ld rss_after_kib=%ld per_conn_bytes=%.0f\n",
                failed == 0 ? 1 : 0, ok, failed, static_cast<double>(t_open - t0) / 1e9, rss0, rss1,
                ok > 0 ? static_cast<double>(rss1 - rss0) * 1024.0 / ok : 0.0);
    std::fflush(stdout);
    for (auto& c : conns) c->close();
    return 0;
}

//------------------------------------------------------------------------------
// serve mode: exec -> first successful read; idle RSS; SIGTERM

bool probe_once(const options& o, int port) {
    try {
        asio::io_context io;
        const tcp::endpoint ep(asio::ip::make_address(o.host), static_cast<unsigned short>(port));
        const auto colon = o.probe.find(':');
        const std::string kind = o.probe.substr(0, colon);
        const std::string what = o.probe.substr(colon + 1);
        if (kind == "ws-get" || kind == "ws-list") {
            websocket::stream<tcp::socket> ws(io);
            ws.next_layer().connect(ep);
            present_token(ws);
            ws.handshake("127.0.0.1:" + std::to_string(port), "/");
            if (kind == "ws-get") {
                ws.write(asio::buffer(R"({"id":"1","type":"request","action":"get_service","params":{"instance_id":")" +
                                      what + "\"}}"));
            } else {
                ws.write(asio::buffer(std::string_view(R"({"id":"1","type":"request","action":"list_services"})")));
            }
            beast::flat_buffer buf;
            ws.read(buf);
            const bool ok = inspect_response(beast::buffers_to_string(buf.data())).ok;
            error_code ignored;
            ws.next_layer().close(ignored);
            return ok;
        }
        if (kind == "http-range") {
            tcp::socket s(io);
            s.connect(ep);
            http::request<http::string_body> req{http::verb::post, "/v3/kv/range", 11};
            req.set(http::field::host, "127.0.0.1");
            req.set(http::field::content_type, "application/json");
            req.body() = R"({"key":")" + base64(what) + "\"}";
            req.prepare_payload();
            http::write(s, req);
            beast::flat_buffer buf;
            http::response<http::string_body> res;
            http::read(s, buf, res);
            return res.result() == http::status::ok && res.body().find("\"kvs\"") != std::string::npos;
        }
        if (kind == "http-health") {
            tcp::socket s(io);
            s.connect(ep);
            http::request<http::empty_body> req{http::verb::get, "/health", 11};
            req.set(http::field::host, "127.0.0.1");
            http::write(s, req);
            beast::flat_buffer buf;
            http::response<http::string_body> res;
            http::read(s, buf, res);
            return res.result() == http::status::ok && res.body().find("true") != std::string::npos;
        }
        die("unknown probe " + o.probe);
    } catch (const boost::system::system_error&) {
        return false;
    }
}

int run_serve(const options& o) {
    if (o.command.empty() || o.probe.empty()) usage();
    if (!o.port_file.empty()) ::unlink(o.port_file.c_str());
    const std::uint64_t t0 = now_ns();
    const pid_t pid = ::fork();
    if (pid < 0) die("fork failed");
    if (pid == 0) {
        if (o.cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(o.cpu, &set);
            ::sched_setaffinity(0, sizeof set, &set);
        }
        if (!o.child_log.empty()) {
            const int fd = ::open(o.child_log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                ::dup2(fd, 1);
                ::dup2(fd, 2);
                ::close(fd);
            }
        }
        std::vector<char*> argv;
        for (const auto& a : o.command) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execvp(argv[0], argv.data());
        std::_Exit(127);
    }
    auto stop_child = [&](bool report) {
        ::kill(pid, SIGTERM);
        const std::uint64_t ts = now_ns();
        int status = 0;
        for (;;) {
            const pid_t r = ::waitpid(pid, &status, WNOHANG);
            if (r == pid) break;
            if (now_ns() - ts > 20'000'000'000ull) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, &status, 0);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (report) {
            std::printf(" stop_ms=%.1f exit=%d\n", static_cast<double>(now_ns() - ts) / 1e6,
                        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        }
    };

    int port = o.port;
    const std::uint64_t deadline = t0 + static_cast<std::uint64_t>(o.timeout * 1e9);
    std::uint64_t t_serving = 0;
    int attempts = 0;
    while (now_ns() < deadline) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) die("the server exited before serving");
        if (port == 0) {
            // registryd writes its port file atomically (rename): a file
            // that exists is complete.
            std::ifstream in(o.port_file);
            std::string line;
            if (in && std::getline(in, line)) {
                const auto colon = line.rfind(':');
                if (colon != std::string::npos) port = std::stoi(line.substr(colon + 1));
            }
            if (port == 0) {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                continue;
            }
        }
        ++attempts;
        if (probe_once(o, port)) {
            t_serving = now_ns();
            break;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (t_serving == 0) {
        stop_child(false);
        die("the server did not serve within the timeout");
    }
    // CPU time to serving: unlike the wall-clock time, load from elsewhere on
    // the machine barely changes it.
    const double cpu_serving = proc_cpu_seconds(pid);
    const long rss_serving = rss_kib(pid);
    std::this_thread::sleep_for(std::chrono::microseconds(static_cast<std::int64_t>(o.settle * 1e6)));
    const long rss_idle = rss_kib(pid);
    std::printf("ok=1 pid=%d serve_ms=%.2f serve_cpu_ms=%.0f probes=%d rss_at_serving_kib=%ld rss_idle_kib=%ld",
                static_cast<int>(pid), static_cast<double>(t_serving - t0) / 1e6, cpu_serving * 1e3, attempts,
                rss_serving, rss_idle);
    stop_child(true);
    std::fflush(stdout);
    return 0;
}

// wait mode: until the probe succeeds (the server is up), or exit 1.
int run_wait(const options& o) {
    if (o.probe.empty()) usage();
    const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(o.timeout * 1e9);
    const int port = resolve_port(o);
    while (now_ns() < deadline) {
        if (probe_once(o, port)) return 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    die("the server did not become ready");
}

// request mode: one request (e.g. deploy_package), its events skipped, timed
// from the send to the response: "ms=... ok=0|1 response=<the first 300 bytes>".
int run_request(const options& o) {
    const int port = resolve_port(o);
    asio::io_context io;
    websocket::stream<tcp::socket> ws(io);
    ws.next_layer().connect(tcp::endpoint(asio::ip::make_address(o.host), static_cast<unsigned short>(port)));
    present_token(ws);
    ws.handshake("127.0.0.1:" + std::to_string(port), "/");
    ws.read_message_max(64u << 20);
    const std::string text = R"({"id":"1","type":"request","action":")" + o.action + R"(","params":)" + o.params + "}";
    const std::uint64_t began = now_ns();
    ws.write(asio::buffer(text));
    for (;;) {
        beast::flat_buffer buf;
        ws.read(buf);
        const std::string msg = beast::buffers_to_string(buf.data());
        const response_info r = inspect_response(msg);
        if (!r.is_response || r.id != "1") continue;
        const double ms = static_cast<double>(now_ns() - began) / 1e6;
        std::string shown = msg.substr(0, 300);
        for (char& c : shown) {
            if (c == ' ' || c == '\n') c = '_';
        }
        std::printf("ms=%.1f ok=%d response=%s\n", ms, r.ok ? 1 : 0, shown.c_str());
        error_code ignored;
        ws.next_layer().close(ignored);
        return r.ok ? 0 : 1;
    }
}

// fsync mode: the cost of one durable append on this disk (what every
// durable write pays at least once): appends 4 KiB and fdatasyncs, N times.
int run_fsync(const options& o) {
    const std::string path = o.dir + "/fsync-probe";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die("open " + path + ": " + std::strerror(errno));
    const std::string block(4096, 'x');
    histogram h;
    const std::uint64_t n = o.count > 0 ? o.count : 50;
    for (std::uint64_t i = 0; i < n; ++i) {
        const std::uint64_t t = now_ns();
        if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) die("write failed");
        if (::fdatasync(fd) != 0) die("fdatasync failed");
        h.add(now_ns() - t);
    }
    ::close(fd);
    ::unlink(path.c_str());
    std::printf("ok=1 count=%llu median_us=%.1f p99_us=%.1f max_us=%.1f\n", static_cast<unsigned long long>(n),
                static_cast<double>(h.quantile(0.5)) / 1e3, static_cast<double>(h.quantile(0.99)) / 1e3,
                static_cast<double>(h.max()) / 1e3);
    return 0;
}

int free_port() {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::printf("%d\n", a.local_endpoint().port());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    if (!o.tls_ca.empty()) {
        tls_ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
        tls_ctx->load_verify_file(o.tls_ca);
        tls_ctx->set_verify_mode(asio::ssl::verify_peer);
    }
    raise_fd_limit();
    ::signal(SIGPIPE, SIG_IGN);
    if (o.mode == "ws") {
        if (o.action != "get" && o.action != "register") usage();
        return run_rr<ws_rr_conn>(o);
    }
    if (o.mode == "http") {
        if (o.action != "range" && o.action != "put") usage();
        return run_rr<http_rr_conn>(o);
    }
    if (o.mode == "fanout") return run_fanout(o);
    if (o.mode == "idle") return run_idle(o);
    if (o.mode == "serve") return run_serve(o);
    if (o.mode == "wait") return run_wait(o);
    if (o.mode == "fsync") return run_fsync(o);
    if (o.mode == "request") return run_request(o);
    if (o.mode == "free-port") return free_port();
    usage();
}
