// The one TU with Asio and Beast.
#include "harness.hpp"

#include "etcd_server.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/dynamic_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <algorithm>
#include <mutex>
#include <set>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace it {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
namespace fs = std::filesystem;

ms scaled(ms d) {
    static const double scale = [] {
        const char* s = std::getenv("REGISTRYD_IT_TIMEOUT_SCALE");
        if (!s || !*s) return 1.0;
        const double v = std::strtod(s, nullptr);
        return v > 0 ? v : 1.0;
    }();
    return ms(static_cast<std::int64_t>(static_cast<double>(d.count()) * scale));
}

// ---------------------------------------------------------------- JSON helpers

json::value parse(std::string_view text) {
    try {
        return json::parse(text);
    } catch (const std::invalid_argument& e) {
        std::string shown(text.substr(0, 500));
        throw failure("not valid JSON (" + std::string(e.what()) + "): " + shown);
    }
}

json::object parse_object(std::string_view text) {
    json::value v = parse(text);
    if (!v.is_object()) throw failure("not a JSON object: " + std::string(text.substr(0, 500)));
    return std::move(v.as_object());
}

std::string dump(const json::value& v) { return json::serialize(v); }

namespace {

std::string shown(const json::value& v) {
    std::string s = dump(v);
    if (s.size() > 2000) s = s.substr(0, 2000) + "...";
    return s;
}

}  // namespace

const json::value& at(const json::value& v, std::string_view pointer) {
    const json::value* p = v.find_pointer(pointer);
    if (!p) throw failure("JSON has no " + std::string(pointer) + " in " + shown(v));
    return *p;
}

bool has(const json::value& v, std::string_view pointer) {
    return v.find_pointer(pointer) != nullptr;
}

std::int64_t num(const json::value& v, std::string_view pointer) {
    const json::value& x = at(v, pointer);
    if (x.is_int64()) return x.get_int64();
    if (x.is_uint64() && x.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
        return static_cast<std::int64_t>(x.get_uint64());
    throw failure(std::string(pointer) + " is not an integer in " + shown(v));
}

std::string str(const json::value& v, std::string_view pointer) {
    const json::value& x = at(v, pointer);
    if (!x.is_string()) throw failure(std::string(pointer) + " is not a string in " + shown(v));
    return std::string(x.get_string());
}

bool boolean(const json::value& v, std::string_view pointer) {
    const json::value& x = at(v, pointer);
    if (!x.is_bool()) throw failure(std::string(pointer) + " is not a boolean in " + shown(v));
    return x.get_bool();
}

const json::array& arr(const json::value& v, std::string_view pointer) {
    const json::value& x = at(v, pointer);
    if (!x.is_array()) throw failure(std::string(pointer) + " is not an array in " + shown(v));
    return x.get_array();
}

const json::object& obj(const json::value& v, std::string_view pointer) {
    const json::value& x = at(v, pointer);
    if (!x.is_object()) throw failure(std::string(pointer) + " is not an object in " + shown(v));
    return x.get_object();
}

// ------------------------------------------------------------- process control

std::string exit_status::describe() const {
    if (exited) return "exited with status " + std::to_string(code);
    if (signal) return std::string("killed by signal ") + std::to_string(signal) + " (" + strsignal(signal) + ")";
    return "unknown";
}

namespace {

exit_status decode_status(int status) {
    exit_status s;
    if (WIFEXITED(status)) {
        s.exited = true;
        s.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        s.signal = WTERMSIG(status);
    }
    return s;
}

bool keep_dirs() {
    const char* s = std::getenv("REGISTRYD_IT_KEEP");
    return s && *s && std::string_view(s) != "0";
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

temp_dir::temp_dir(std::string_view prefix) {
    std::string tmpl = "/tmp/" + std::string(prefix) + "-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw failure(std::string("mkdtemp failed: ") + std::strerror(errno));
    path_ = tmpl;
}

temp_dir::~temp_dir() {
    if (path_.empty() || keep_dirs()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
}

namespace {

// A loopback port nothing listens on now (bound, read, closed).
std::uint16_t unused_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        if (fd >= 0) ::close(fd);
        throw failure("unused_port: cannot bind");
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

}  // namespace

std::uint16_t free_port() {
    // The kernel may hand the same free port out twice in a row: never give
    // a port this process gave before (two of one etcd's ports, say).
    static std::mutex given_lock;
    static std::set<std::uint16_t> given;
    for (;;) {
        const std::uint16_t port = unused_port();
        const std::lock_guard lock(given_lock);
        if (given.insert(port).second) return port;
    }
}

namespace {

// REGISTRY_IT_STORE=etcd: every registryd whose configuration names no store
// keeps its registry in one etcd this test process starts (at the first such
// registryd; stopped by pid at exit), under a prefix of its own. The suites
// whose behaviour is the store's run so against both stores
// (tests/CMakeLists.txt registers them twice).
std::string shared_etcd_store() {
    const char* store = std::getenv("REGISTRY_IT_STORE");
    if (!store || std::string_view(store) != "etcd") return {};
    static etcd_server etcd;
    static int registries = 0;
    return "\nstore:\n  kind: etcd\n  etcd:\n    endpoints: [\"" + etcd.client_url() + "\"]\n    prefix: /it-" +
           std::to_string(++registries) + "/\n    writer_lease_ttl_seconds: 2\n";
}

}  // namespace

registryd::registryd(std::string config_yaml, bool autostart) : config_(std::move(config_yaml)) {
    if (config_.find("store:") == std::string::npos) config_ += shared_etcd_store();
    if (autostart) start();
}

registryd::~registryd() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
    }
}

bool registryd::port_file_written() const {
    std::error_code ec;
    return fs::exists(dir_.path() / "port", ec);
}

void registryd::start(ms timeout) {
    spawn();
    wait_ready(timeout);
}

void registryd::spawn() {
    if (running()) throw failure("registryd::start: already running (pid " + std::to_string(pid_) + ")");
    const fs::path dir = dir_.path();
    const fs::path port_file = dir / "port";
    const fs::path log_file = dir / "registryd.stderr";
    std::error_code ec;
    fs::remove(port_file, ec);
    fs::create_directories(data_dir(), ec);

    // A restart keeps the port when asked (a client that reconnects to its URL).
    const std::string listen = keep_port_ && port_ != 0 ? "127.0.0.1:" + std::to_string(port_) : listen_;
    std::vector<std::string> args{REGISTRYD_PATH,     "--listen",      listen,
                                  "--data-dir",       data_dir().string(), "--port-file",
                                  port_file.string()};
    if (!config_.empty()) {
        const fs::path cfg = dir / "registryd.yaml";
        std::string text = config_;
        for (auto at = text.find("{dir}"); at != std::string::npos; at = text.find("{dir}", at))
            text.replace(at, 5, dir.string());
        std::ofstream out(cfg, std::ios::trunc);
        out << text;
        if (text.back() != '\n') out << '\n';
        out.close();
        if (!out) throw failure("cannot write " + cfg.string());
        args.push_back("--config");
        args.push_back(cfg.string());
    }
    if (const char* lvl = std::getenv("REGISTRYD_IT_LOG_LEVEL"); lvl && *lvl) {
        args.push_back("--log-level");
        args.push_back(lvl);
    }
    {
        std::ofstream log(log_file, std::ios::app);
        log << "=== harness: start #" << ++starts_ << ":";
        for (const auto& a : args) log << ' ' << a;
        log << " ===\n";
    }

    // Everything the child needs is prepared before fork: between fork and
    // exec only async-signal-safe calls.
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log_path = log_file.string();
    const pid_t parent = ::getpid();
    const long open_max = ::sysconf(_SC_OPEN_MAX);
    const rlimit nofile{static_cast<rlim_t>(nofile_), static_cast<rlim_t>(nofile_)};

    const pid_t pid = ::fork();
    if (pid < 0) throw failure(std::string("fork failed: ") + std::strerror(errno));
    if (pid == 0) {
        // Never outlive the test binary (the forking thread is the main thread).
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
        const int in = ::open("/dev/null", O_RDONLY);
        const int err = ::open(log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
        if (in < 0 || err < 0) ::_exit(126);
        ::dup2(in, 0);
        ::dup2(err, 1);
        ::dup2(err, 2);
        // No inherited sockets: a client socket held open by the daemon would
        // hide the client's close from the daemon.
        if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
            for (long fd = 3; fd < open_max; ++fd) ::close(static_cast<int>(fd));
        }
        if (nofile.rlim_cur != 0 && ::setrlimit(RLIMIT_NOFILE, &nofile) != 0) ::_exit(125);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        ::sigaction(SIGPIPE, &dfl, nullptr);
        ::execv(argv[0], argv.data());
        static const char msg[] = "harness: execv of registryd failed\n";
        [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
        ::_exit(127);
    }
    pid_ = pid;
    last_exit_.reset();
    host_.clear();
    port_ = 0;
}

void registryd::wait_ready(ms timeout) {
    const fs::path port_file = dir_.path() / "port";
    std::error_code ec;
    const auto deadline = steady::now() + scaled(timeout);
    for (;;) {
        if (!running()) {
            throw failure("registryd exited during startup (" + (last_exit_ ? last_exit_->describe() : "?") +
                          ")\n" + diagnostics());
        }
        if (fs::exists(port_file, ec)) {
            const std::string text = read_file(port_file);
            if (!text.empty() && text.back() == '\n') {
                const std::string line = text.substr(0, text.size() - 1);
                const auto colon = line.rfind(':');
                if (colon == std::string::npos) {
                    kill9();
                    throw failure("port file has no HOST:PORT: \"" + line + "\"\n" + diagnostics());
                }
                host_ = line.substr(0, colon);
                if (host_.size() >= 2 && host_.front() == '[') host_ = host_.substr(1, host_.size() - 2);
                const int port = std::atoi(line.c_str() + colon + 1);
                if (port <= 0 || port > 65535) {
                    kill9();
                    throw failure("port file has a bad port: \"" + line + "\"\n" + diagnostics());
                }
                port_ = static_cast<std::uint16_t>(port);
                return;
            }
        }
        if (steady::now() >= deadline) {
            kill9();
            throw failure("registryd did not write its port file within " + std::to_string(scaled(timeout).count()) +
                          " ms\n" + diagnostics());
        }
        std::this_thread::sleep_for(5ms);
    }
}

void registryd::write_file(const std::string& name, std::string_view content, unsigned mode) const {
    const fs::path file = dir() / name;
    {
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out << content;
        out.close();
        if (!out) throw failure("cannot write " + file.string());
    }
    fs::permissions(file, static_cast<fs::perms>(mode), fs::perm_options::replace);
}

std::uint64_t registryd::rss_bytes() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "VmRSS:   12345 kB"
    }
    throw failure("no VmRSS for pid " + std::to_string(pid_));
}

bool registryd::running() {
    if (pid_ <= 0) return false;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        last_exit_ = decode_status(status);
        pid_ = -1;
        return false;
    }
    return true;
}

void registryd::signal(int sig) {
    if (pid_ <= 0) throw failure("registryd::signal: not running");
    ::kill(pid_, sig);
}

std::optional<exit_status> registryd::wait_exit(ms timeout) {
    const auto deadline = steady::now() + scaled(timeout);
    for (;;) {
        if (!running()) return last_exit_;
        if (steady::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(2ms);
    }
}

exit_status registryd::terminate(ms timeout) {
    if (!running()) throw failure("registryd::terminate: not running (" +
                                  (last_exit_ ? last_exit_->describe() : std::string("never started")) + ")");
    ::kill(pid_, SIGTERM);
    if (auto st = wait_exit(timeout)) return *st;
    kill9();
    throw failure("registryd did not exit within " + std::to_string(scaled(timeout).count()) +
                  " ms of SIGTERM (SIGKILLed)\n" + diagnostics());
}

exit_status registryd::kill9() {
    if (pid_ <= 0) throw failure("registryd::kill9: not running");
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    last_exit_ = decode_status(status);
    return *last_exit_;
}

void registryd::wait_writer(ms timeout) {
    const fs::path log_file = dir_.path() / "registryd.stderr";
    const auto deadline = steady::now() + scaled(timeout);
    const auto serving = [&] {
        const std::string log = read_file(log_file);
        int count = 0;
        for (auto at = log.find(R"("msg":"listening")"); at != std::string::npos; at = log.find(R"("msg":"listening")", at + 1))
            ++count;
        return count >= starts_;
    };
    while (!serving()) {
        if (!running()) throw failure("registryd exited before it served as the writer\n" + diagnostics());
        if (steady::now() >= deadline) throw failure("registryd did not serve as the writer in time\n" + diagnostics());
        std::this_thread::sleep_for(20ms);
    }
    wait_ready();
}

std::string registryd::diagnostics(std::size_t max_bytes) const {
    std::string out = "registryd ";
    if (pid_ > 0)
        out += "pid " + std::to_string(pid_) + " (running) on " + host_ + ":" + std::to_string(port_);
    else if (last_exit_)
        out += last_exit_->describe();
    else
        out += "not running";
    const fs::path log_file = dir_.path() / "registryd.stderr";
    std::string log = read_file(log_file);
    out += "; stderr (" + log_file.string() + ", " + std::to_string(log.size()) + " bytes)";
    if (log.size() > max_bytes) {
        log = "...\n" + log.substr(log.size() - max_bytes);
        out += ", tail";
    }
    out += ":\n" + log;
    return out;
}

// ------------------------------------------------------------ WebSocket client

std::string close_info::describe() const {
    if (!closed) return "open";
    std::string s = close_frame ? "close frame " + std::to_string(code) + " \"" + reason + "\"" : "no close frame";
    if (by_client) s += " (client-initiated)";
    if (!error.empty()) s += " [" + error + "]";
    return s;
}

struct ws_client::impl {
    asio::io_context ioc;
    websocket::stream<tcp::socket> ws{ioc};
    beast::flat_buffer rbuf;
    bool reading = false;
    bool writing = false;
    bool broken = false;  // a write timed out: no more writes
    bool closing = false;
    std::string out;
    boost::system::error_code write_ec;
    std::deque<json::value> events;
    std::map<std::string, json::value> responses;
    std::deque<json::value> null_responses;
    std::vector<std::string> protocol_errors;
    close_info closed;
    std::uint64_t next_id = 1;
    std::string peer;

    void fail_protocol(std::string what) {
        if (protocol_errors.size() < 20) protocol_errors.push_back(std::move(what));
    }

    void check_protocol() const {
        if (protocol_errors.empty()) return;
        std::string msg = "server sent unexpected frames:";
        for (const auto& e : protocol_errors) msg += "\n  " + e;
        throw failure(msg);
    }

    void start_read() {
        if (reading || closed.closed) return;
        reading = true;
        ws.async_read(rbuf, [this](boost::system::error_code ec, std::size_t) {
            reading = false;
            on_read(ec);
        });
    }

    void on_read(boost::system::error_code ec) {
        if (ec) {
            closed.closed = true;
            if (ec == websocket::error::closed) {
                closed.close_frame = true;
                closed.code = static_cast<int>(ws.reason().code);
                closed.reason = std::string(ws.reason().reason.data(), ws.reason().reason.size());
            } else {
                closed.error = ec.message();
            }
            closed.by_client = closing;
            return;
        }
        std::string text = beast::buffers_to_string(rbuf.data());
        rbuf.consume(rbuf.size());
        if (!ws.got_text()) {
            fail_protocol("binary frame (" + std::to_string(text.size()) + " bytes)");
        } else {
            json::value v;
            bool parsed = true;
            try {
                v = json::parse(text);
            } catch (const std::invalid_argument&) {
                parsed = false;
            }
            if (!parsed || !v.is_object()) {
                fail_protocol("not a JSON object: " + text.substr(0, 300));
            } else {
                dispatch(std::move(v), text);
            }
        }
        start_read();
    }

    void dispatch(json::value v, const std::string& text) {
        const json::object& o = v.get_object();
        const json::value* type = o.if_contains("type");
        if (!type || !type->is_string()) {
            fail_protocol("frame without a string \"type\": " + text.substr(0, 300));
            return;
        }
        if (type->get_string() == "event") {
            events.push_back(std::move(v));
        } else if (type->get_string() == "response") {
            const json::value* id = o.if_contains("id");
            if (!id) {
                fail_protocol("response without \"id\": " + text.substr(0, 300));
            } else if (id->is_null()) {
                null_responses.push_back(std::move(v));
            } else if (id->is_string()) {
                std::string key(id->get_string());
                if (responses.count(key)) fail_protocol("second response for id " + key);
                responses.emplace(std::move(key), std::move(v));
            } else {
                fail_protocol("response id is neither a string nor null: " + text.substr(0, 300));
            }
        } else {
            fail_protocol("unknown frame type: " + text.substr(0, 300));
        }
    }

    // Runs the io_context until pred() holds or the deadline passes. Returns
    // pred(). Returns early (false) when the connection is closed and nothing
    // more can arrive.
    bool run_until(const std::function<bool()>& pred, steady::time_point deadline) {
        start_read();
        for (;;) {
            if (pred()) return true;
            if (closed.closed && !reading && !writing) return pred();
            const auto now = steady::now();
            if (now >= deadline) return pred();
            if (ioc.stopped()) ioc.restart();
            ioc.run_one_for(deadline - now);
        }
    }

    void write(std::string_view data, bool binary) {
        if (broken) throw failure("ws_client: an earlier write timed out");
        if (closed.closed) throw failure("ws_client: cannot send, connection closed: " + closed.describe());
        out.assign(data.data(), data.size());
        ws.text(!binary);
        writing = true;
        write_ec = {};
        ws.async_write(asio::buffer(out), [this](boost::system::error_code ec, std::size_t) {
            writing = false;
            write_ec = ec;
        });
        const bool done = run_until([this] { return !writing; }, steady::now() + scaled(10s));
        if (!done) {
            broken = true;
            throw failure("ws_client: write of " + std::to_string(out.size()) + " bytes did not complete in 10 s");
        }
        if (write_ec) throw failure("ws_client: write failed: " + write_ec.message() + " (" + closed.describe() + ")");
    }

    [[noreturn]] void timeout(const std::string& what, ms t) {
        check_protocol();
        throw failure("timeout after " + std::to_string(t.count()) + " ms waiting for " + what + " from " + peer +
                      " (connection " + closed.describe() + ")");
    }
};

ws_client::ws_client(const std::string& host, std::uint16_t port, client_options opts)
    : impl_(std::make_unique<impl>()) {
    impl& m = *impl_;
    m.peer = host + ":" + std::to_string(port);
    tcp::socket& sock = m.ws.next_layer();
    const tcp::endpoint ep(asio::ip::make_address(host), port);
    sock.open(ep.protocol());
    if (opts.receive_buffer_bytes > 0) sock.set_option(asio::socket_base::receive_buffer_size(opts.receive_buffer_bytes));
    const auto deadline = steady::now() + scaled(opts.connect_timeout);

    bool done = false;
    boost::system::error_code ec;
    sock.async_connect(ep, [&](boost::system::error_code e) {
        done = true;
        ec = e;
    });
    while (!done && steady::now() < deadline) {
        if (m.ioc.stopped()) m.ioc.restart();
        m.ioc.run_one_for(deadline - steady::now());
    }
    if (!done) throw failure("ws_client: connect to " + m.peer + " timed out");
    if (ec) throw failure("ws_client: connect to " + m.peer + " failed: " + ec.message());
    sock.set_option(tcp::no_delay(true));

    m.ws.read_message_max(256u << 20);
    m.ws.auto_fragment(false);
    done = false;
    if (!opts.headers.empty()) {
        m.ws.set_option(websocket::stream_base::decorator([headers = opts.headers](websocket::request_type& req) {
            for (const auto& [name, value] : headers) req.set(name, value);
        }));
    }
    websocket::response_type answer;
    m.ws.async_handshake(answer, m.peer, opts.target, [&](boost::system::error_code e) {
        done = true;
        ec = e;
    });
    while (!done && steady::now() < deadline) {
        if (m.ioc.stopped()) m.ioc.restart();
        m.ioc.run_one_for(deadline - steady::now());
    }
    if (!done) {
        m.ws.next_layer().close(ec);
        m.ioc.restart();
        m.ioc.poll();
        throw failure("ws_client: WebSocket handshake with " + m.peer + " timed out");
    }
    if (ec)
        throw failure("ws_client: WebSocket handshake with " + m.peer + " failed: " + ec.message() + " (HTTP " +
                      std::to_string(answer.result_int()) + ")");
}

ws_client::ws_client(const registryd& d, client_options opts) : ws_client(d.host(), d.port(), opts) {}

ws_client::~ws_client() {
    if (!impl_) return;
    try {
        if (!impl_->closed.closed && !impl_->broken && !impl_->writing) close(300ms);
    } catch (...) {
    }
    boost::system::error_code ec;
    impl_->ws.next_layer().close(ec);
}

ws_client::ws_client(ws_client&&) noexcept = default;
ws_client& ws_client::operator=(ws_client&&) noexcept = default;

std::string ws_client::send_request(std::string_view action, json::object params) {
    impl& m = *impl_;
    std::string id = "r" + std::to_string(m.next_id++);
    json::object req;
    req["id"] = id;
    req["type"] = "request";
    req["action"] = json::string_view(action.data(), action.size());
    req["params"] = std::move(params);
    m.write(json::serialize(req), false);
    return id;
}

json::value ws_client::wait_response(const std::string& id, ms timeout) {
    impl& m = *impl_;
    const ms t = scaled(timeout);
    const bool ok = m.run_until([&] { return m.responses.count(id) > 0; }, steady::now() + t);
    m.check_protocol();
    if (!ok) m.timeout("the response to request " + id, t);
    auto node = m.responses.extract(id);
    return std::move(node.mapped());
}

json::value ws_client::next_response(ms timeout) {
    impl& m = *impl_;
    const ms t = scaled(timeout);
    const bool ok = m.run_until([&] { return !m.responses.empty(); }, steady::now() + t);
    m.check_protocol();
    if (!ok) m.timeout("any response", t);
    auto node = m.responses.extract(m.responses.begin());
    return std::move(node.mapped());
}

json::value ws_client::request(std::string_view action, json::object params, ms timeout) {
    const std::string id = send_request(action, std::move(params));
    return wait_response(id, timeout);
}

json::value ws_client::call(std::string_view action, json::object params, ms timeout) {
    const std::string sent = json::serialize(params);
    json::value r = request(action, std::move(params), timeout);
    json::value* data = r.get_object().if_contains("data");
    if (!data || !data->is_object())
        throw failure(std::string(action) + " " + sent.substr(0, 500) + " failed: " + shown(r));
    return std::move(*data);
}

void ws_client::send_text(std::string_view text) { impl_->write(text, false); }
void ws_client::send_binary(std::string_view bytes) { impl_->write(bytes, true); }

json::value ws_client::wait_null_response(ms timeout) {
    impl& m = *impl_;
    const ms t = scaled(timeout);
    const bool ok = m.run_until([&] { return !m.null_responses.empty(); }, steady::now() + t);
    m.check_protocol();
    if (!ok) m.timeout("a response with \"id\": null", t);
    json::value v = std::move(m.null_responses.front());
    m.null_responses.pop_front();
    return v;
}

std::optional<json::value> ws_client::next_event(ms timeout, bool include_bookmarks) {
    impl& m = *impl_;
    const auto deadline = steady::now() + scaled(timeout);
    for (;;) {
        const bool ok = m.run_until([&] { return !m.events.empty(); }, deadline);
        m.check_protocol();
        if (!ok) return std::nullopt;
        json::value v = std::move(m.events.front());
        m.events.pop_front();
        if (!include_bookmarks) {
            const json::value* e = v.get_object().if_contains("event");
            if (e && e->is_string() && e->get_string() == "bookmark") continue;
        }
        return v;
    }
}

json::value ws_client::expect_event(std::string_view type, ms timeout) {
    auto ev = next_event(timeout);
    if (!ev) impl_->timeout("a \"" + std::string(type) + "\" event", scaled(timeout));
    const json::value* e = ev->get_object().if_contains("event");
    if (!e || !e->is_string() || e->get_string() != json::string_view(type.data(), type.size()))
        throw failure("expected a \"" + std::string(type) + "\" event, got " + shown(*ev));
    return std::move(*ev);
}

std::size_t ws_client::buffered_events() const { return impl_->events.size(); }

void ws_client::pump(ms duration) {
    impl_->run_until([] { return false; }, steady::now() + duration);
    impl_->check_protocol();
}

close_info ws_client::wait_closed(ms timeout) {
    impl& m = *impl_;
    const ms t = scaled(timeout);
    const bool ok = m.run_until([&] { return m.closed.closed && !m.reading; }, steady::now() + t);
    if (!ok) m.timeout("the connection to close", t);
    return m.closed;
}

void ws_client::close(ms timeout) {
    impl& m = *impl_;
    if (m.closed.closed) return;
    if (m.writing) throw failure("ws_client::close: a write is pending");
    m.closing = true;
    m.writing = true;
    m.ws.async_close(websocket::close_code::normal, [&m](boost::system::error_code ec) {
        m.writing = false;
        m.write_ec = ec;
    });
    const ms t = scaled(timeout);
    const bool ok = m.run_until([&] { return m.closed.closed && !m.writing; }, steady::now() + t);
    if (!ok) {
        boost::system::error_code ec;
        m.ws.next_layer().close(ec);
        m.ioc.restart();
        m.ioc.poll();
        m.closed.closed = true;
        m.closed.by_client = true;
        if (m.closed.error.empty()) m.closed.error = "close handshake timed out; socket dropped";
        throw failure("ws_client::close: no close handshake within " + std::to_string(t.count()) + " ms");
    }
}

void ws_client::abort() {
    impl& m = *impl_;
    boost::system::error_code ec;
    m.ws.next_layer().shutdown(tcp::socket::shutdown_both, ec);
    m.ws.next_layer().close(ec);
    m.ioc.restart();
    m.ioc.poll();  // let the aborted read complete
    m.closed.closed = true;
    m.closed.by_client = true;
    if (m.closed.error.empty()) m.closed.error = "aborted by client";
}

bool ws_client::is_closed() const { return impl_->closed.closed; }
const close_info& ws_client::close_status() const { return impl_->closed; }

// ----------------------------------------------------------------------- HTTP

http_response http_get(const std::string& host, std::uint16_t port, std::string_view target, ms timeout,
                       const header_list& headers) {
    return http_request(host, port, "GET", target, timeout, headers);
}

http_response upgrade_request(const std::string& host, std::uint16_t port, std::string_view target,
                              const header_list& headers, ms timeout) {
    header_list all{{"Upgrade", "websocket"},
                    {"Sec-WebSocket-Version", "13"},
                    {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}};
    all.insert(all.end(), headers.begin(), headers.end());
    return http_request(host, port, "GET", target, timeout, all);
}

http_response http_request(const std::string& host, std::uint16_t port, std::string_view method,
                           std::string_view target, ms timeout, const header_list& headers) {
    asio::io_context ioc;
    tcp::socket sock(ioc);
    const auto deadline = steady::now() + scaled(timeout);
    const std::string what = std::string(method) + " http://" + host + ":" + std::to_string(port) + std::string(target);
    auto run = [&](bool& done) {
        while (!done && steady::now() < deadline) {
            if (ioc.stopped()) ioc.restart();
            ioc.run_one_for(deadline - steady::now());
        }
        if (!done) throw failure(what + ": timed out");
    };

    bool done = false;
    boost::system::error_code ec;
    sock.async_connect(tcp::endpoint(asio::ip::make_address(host), port), [&](boost::system::error_code e) {
        done = true;
        ec = e;
    });
    run(done);
    if (ec) throw failure(what + ": connect failed: " + ec.message());

    http::request<http::empty_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, host + ":" + std::to_string(port));
    const bool upgrading = std::any_of(headers.begin(), headers.end(), [](const auto& h) { return h.first == "Upgrade"; });
    req.set(http::field::connection, upgrading ? "Upgrade" : "close");
    for (const auto& [name, value] : headers) req.set(name, value);
    done = false;
    http::async_write(sock, req, [&](boost::system::error_code e, std::size_t) {
        done = true;
        ec = e;
    });
    run(done);
    if (ec) throw failure(what + ": write failed: " + ec.message());

    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    done = false;
    http::async_read(sock, buf, parser, [&](boost::system::error_code e, std::size_t) {
        done = true;
        ec = e;
    });
    run(done);
    if (ec) throw failure(what + ": read failed: " + ec.message());
    res = parser.release();
    http_response out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    out.allow = std::string(res[http::field::allow]);
    out.www_authenticate = std::string(res[http::field::www_authenticate]);
    out.retry_after = std::string(res[http::field::retry_after]);
    out.body = std::move(res.body());
    sock.close(ec);
    return out;
}

// --------------------------------------------------------------- test helpers

std::int64_t now_ms() {
    return std::chrono::duration_cast<ms>(std::chrono::system_clock::now().time_since_epoch()).count();
}

json::object service(std::string_view name, std::string_view instance_id) {
    json::object o;
    o["name"] = json::string_view(name.data(), name.size());
    o["instance_id"] = json::string_view(instance_id.data(), instance_id.size());
    return o;
}

json::object registration(json::object svc, int ttl_seconds, bool session_bound) {
    json::object o;
    o["service"] = std::move(svc);
    o["ttl_seconds"] = ttl_seconds;
    if (session_bound) o["session_bound"] = true;
    return o;
}

std::string error_code(const json::value& response) {
    return has(response, "/error/code") ? str(response, "/error/code") : std::string();
}

std::string error_message(const json::value& response) {
    return has(response, "/error/message") ? str(response, "/error/message") : std::string();
}

}  // namespace it
