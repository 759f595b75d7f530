// Integration-test harness for registryd: a temp dir per test, the real
// daemon started with fork/exec and stopped by pid, and a small synchronous
// WebSocket client. This header is deliberately light: Asio and Beast live
// only in harness.cpp (compile time); tests see harness_json.hpp's values.
//
// Every wait is bounded; a timeout throws it::failure with a message saying
// what was awaited. Nothing outlives its owner: ~registryd SIGKILLs a daemon
// that is still running and removes the temp dir, ~ws_client drops its socket.
//
// Environment knobs (for debugging, all optional):
//   REGISTRYD_IT_KEEP=1          keep the temp dirs
//   REGISTRYD_IT_LOG_LEVEL=debug pass --log-level to the daemon
//   REGISTRYD_IT_TIMEOUT_SCALE=3 multiply every timeout (sanitizer builds)
#pragma once

#include "harness_json.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace it {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// A harness-level failure (timeout, unexpected frame, daemon died, ...).
struct failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// `d` multiplied by REGISTRYD_IT_TIMEOUT_SCALE (default 1).
ms scaled(ms d);

inline constexpr ms default_timeout{5000};

// ---------------------------------------------------------------- JSON helpers

json::value parse(std::string_view text);         // throws failure with the text
json::object parse_object(std::string_view text);  // same, must be an object
std::string dump(const json::value& v);
// Values addressed by JSON pointer ("/data/service/lease/id"); a missing or
// mistyped member throws failure naming the pointer and showing the document.
const json::value& at(const json::value& v, std::string_view pointer);
bool has(const json::value& v, std::string_view pointer);
std::int64_t num(const json::value& v, std::string_view pointer);
std::string str(const json::value& v, std::string_view pointer);
bool boolean(const json::value& v, std::string_view pointer);
const json::array& arr(const json::value& v, std::string_view pointer);
const json::object& obj(const json::value& v, std::string_view pointer);

// ------------------------------------------------------------- process control

// A loopback port nobody listens on now (bound, read, closed): for servers a
// test must start on a known port.
std::uint16_t free_port();

struct exit_status {
    bool exited = false;  // normal exit (else killed by a signal)
    int code = -1;        // exit code when exited
    int signal = 0;       // signal number when killed
    bool clean() const { return exited && code == 0; }
    std::string describe() const;
};

// A temp dir (mkdtemp under /tmp), removed with its contents on destruction.
class temp_dir {
public:
    explicit temp_dir(std::string_view prefix = "registryd-it");
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

// One registryd under test: owns a fresh temp dir holding data/, the config
// file, the port file and the captured stderr (appended across restarts).
class registryd {
public:
    // `config_yaml` is written to registryd.yaml and passed with --config when
    // not empty; "{dir}" in it stands for dir() (files the test puts there
    // with write_file, e.g. a tokens file). --listen (127.0.0.1:0 unless
    // set_listen), --data-dir and --port-file are always given on the
    // command line.
    explicit registryd(std::string config_yaml = {}, bool autostart = true);
    ~registryd();  // SIGKILLs a still-running daemon, reaps it, removes the dir
    registryd(const registryd&) = delete;
    registryd& operator=(const registryd&) = delete;

    // fork/exec, then wait (bounded) for the port file. Throws failure (with
    // the daemon's stderr) when it exits early or does not come up in time.
    void start(ms timeout = 10s);
    // start() in two steps: spawn() forks and execs, wait_ready() waits for
    // the port file (a standby registryd writes it once it is elected).
    void spawn();
    void wait_ready(ms timeout = 10s);
    // Whether the port file is there now (without waiting).
    bool port_file_written() const;
    // After start(): waits until this start serves as the writer, which it
    // logs ("listening"). A registryd on etcd restarted after a kill -9, or
    // started beside another, serves reads only (a standby, whose port file
    // is there too) until it is elected.
    void wait_writer(ms timeout = 15s);

    // SIGTERM, then wait for the exit; SIGKILL + failure after `timeout`.
    exit_status terminate(ms timeout = 15s);
    // Send a signal, without waiting.
    void signal(int sig);
    // Wait for the process to exit; nullopt on timeout (it keeps running).
    std::optional<exit_status> wait_exit(ms timeout);
    // SIGKILL and reap.
    exit_status kill9();

    // Writes dir()/name with `mode` (the tokens file must not be group-writable).
    void write_file(const std::string& name, std::string_view content, unsigned mode = 0600) const;
    // The --listen of the next start() (default 127.0.0.1:0).
    void set_listen(std::string address) { listen_ = std::move(address); }

    // Every later start() listens on the port of the last one (else a new one).
    void keep_port_across_restarts() { keep_port_ = true; }
    // The open-files limit (soft and hard) of the next start(); 0: inherited.
    void limit_open_files(std::uint64_t n) { nofile_ = n; }
    // The daemon's resident set size (VmRSS of /proc/PID/status), in bytes.
    std::uint64_t rss_bytes() const;

    bool running();  // reaps the process if it has exited
    pid_t pid() const { return pid_; }
    const std::string& host() const { return host_; }
    std::uint16_t port() const { return port_; }
    const std::filesystem::path& dir() const { return dir_.path(); }
    std::filesystem::path data_dir() const { return dir_.path() / "data"; }
    std::optional<exit_status> last_exit() const { return last_exit_; }

    // The tail of the captured stderr (and the process state), for failure
    // messages: INFO(d.diagnostics()) is evaluated only when something fails.
    std::string diagnostics(std::size_t max_bytes = 12000) const;

private:
    temp_dir dir_;
    std::string config_;
    std::string listen_ = "127.0.0.1:0";
    pid_t pid_ = -1;
    int starts_ = 0;
    std::uint64_t nofile_ = 0;
    bool keep_port_ = false;
    std::string host_;
    std::uint16_t port_ = 0;
    std::optional<exit_status> last_exit_;
};

// ------------------------------------------------------------ WebSocket client

struct close_info {
    bool closed = false;
    bool close_frame = false;   // a WebSocket close frame was received
    bool by_client = false;     // we initiated the close handshake
    int code = 0;               // close code of the frame (0: none)
    std::string reason;         // close reason of the frame
    std::string error;          // transport error when there was no close frame
    std::string describe() const;
};

// Extra header fields of a request (Authorization, Origin, ...).
using header_list = std::vector<std::pair<std::string, std::string>>;

struct client_options {
    int receive_buffer_bytes = 0;  // SO_RCVBUF before connect (0: system default)
    ms connect_timeout = 5s;
    std::string target = "/";  // the upgrade's path and query (?access_token=...)
    header_list headers;       // added to the upgrade request
};

// A synchronous WebSocket client. Incoming frames are read only while one of
// its methods waits; responses are matched by id, events are buffered in
// arrival order. Not thread-safe: one thread at a time (different clients may
// live on different threads).
class ws_client {
public:
    ws_client(const std::string& host, std::uint16_t port, client_options opts = {});
    explicit ws_client(const registryd& d, client_options opts = {});
    ~ws_client();
    ws_client(ws_client&&) noexcept;
    ws_client& operator=(ws_client&&) noexcept;

    // Sends {"id", "type":"request", "action", "params"}; returns the id.
    std::string send_request(std::string_view action, json::object params = {});
    // The full response frame for `id` (events arriving meanwhile are buffered).
    json::value wait_response(const std::string& id, ms timeout = default_timeout);
    // The next response with any string id, in no particular order.
    json::value next_response(ms timeout = default_timeout);
    // send_request + wait_response.
    json::value request(std::string_view action, json::object params = {}, ms timeout = default_timeout);
    // request, and the response's "data" (an object); throws failure on an
    // error response.
    json::value call(std::string_view action, json::object params = {}, ms timeout = default_timeout);

    // Raw frames (no id bookkeeping).
    void send_text(std::string_view text);
    void send_binary(std::string_view bytes);
    // The next response whose id is null (answers to broken frames).
    json::value wait_null_response(ms timeout = default_timeout);

    // The next event (bookmarks skipped unless asked for); nullopt on timeout.
    std::optional<json::value> next_event(ms timeout, bool include_bookmarks = false);
    // The next non-bookmark event; throws failure unless it is of `type`.
    json::value expect_event(std::string_view type, ms timeout = default_timeout);
    std::size_t buffered_events() const;

    // Reads for `duration`, buffering whatever arrives.
    void pump(ms duration);
    // Reads (buffering events) until the server closes; throws on timeout.
    close_info wait_closed(ms timeout = default_timeout);
    // Close handshake initiated by us (code 1000), bounded.
    void close(ms timeout = 2s);
    // Drops the TCP connection without a close handshake.
    void abort();

    bool is_closed() const;
    const close_info& close_status() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// ----------------------------------------------------------------------- HTTP

struct http_response {
    int status = 0;
    std::string content_type;
    std::string allow;  // the Allow header (405)
    std::string www_authenticate;
    std::string retry_after;
    std::string body;
};

// One request without a body, `method` as given ("GET", "POST", ...), on its
// own connection (Connection: close), with `headers` added.
http_response http_request(const std::string& host, std::uint16_t port, std::string_view method,
                           std::string_view target, ms timeout = default_timeout, const header_list& headers = {});
http_response http_get(const std::string& host, std::uint16_t port, std::string_view target,
                       ms timeout = default_timeout, const header_list& headers = {});
// A WebSocket upgrade request (GET with the upgrade fields and `headers`)
// whose answer is read as an HTTP response: the refusals (401, 403, 429).
http_response upgrade_request(const std::string& host, std::uint16_t port, std::string_view target,
                              const header_list& headers = {}, ms timeout = default_timeout);

// --------------------------------------------------------------- test helpers

// Wall-clock milliseconds since the epoch (the protocol's time base).
std::int64_t now_ms();
// {"name": name, "instance_id": instance_id}
json::object service(std::string_view name, std::string_view instance_id);
// register params: {"service": svc, "ttl_seconds": ttl[, "session_bound": true]}
json::object registration(json::object svc, int ttl_seconds, bool session_bound = false);
// The error code of a response frame ("" when it has data).
std::string error_code(const json::value& response);
std::string error_message(const json::value& response);

}  // namespace it

// Attach the daemon's stderr tail to every failure reported in this scope.
#define IT_DIAGNOSE(d) INFO((d).diagnostics())
