// A real Podman API service for the container-engine tests.
//
// podman_service starts `podman system service --time=0` on a unix socket in
// a fresh temporary directory (or on tcp://127.0.0.1:PORT), with its own
// storage (--root, --runroot, --tmpdir under that directory; the vfs storage
// driver, so that nothing is mounted on the host but a running container's
// /dev/shm) and a containers.conf the tests own (runtime runc, default
// ulimits). Before that it imports the test image, localhost/registry-busybox,
// from a rootfs tarball that tests/containers/build-images.sh builds once
// into the build directory.
//
// The destructor removes every container, stops the service (SIGTERM, then
// SIGKILL), unmounts whatever is left under the directory and deletes it. The
// service also gets SIGTERM if the test process dies (PR_SET_PDEATHSIG).
#pragma once

#include <registry/task.hpp>

#include <boost/asio/io_context.hpp>

#include <sys/types.h>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace registry_test {

inline constexpr const char* test_image = "localhost/registry-busybox:latest";

struct command_result {
    int exit_code = -1;
    std::string output;  // stdout and stderr
};

// Runs `argv` (no shell), with CONTAINERS_CONF set if `containers_conf` is
// not empty, and collects its output.
command_result run_command(const std::vector<std::string>& argv, const std::string& containers_conf = {});

class podman_service {
public:
    enum class listen_on { unix_socket, tcp };

    // `storage_driver`: vfs mounts nothing but copies a whole image per
    // container; overlay is far quicker for large images.
    explicit podman_service(listen_on where = listen_on::unix_socket, std::string storage_driver = "vfs");
    podman_service(const podman_service&) = delete;
    podman_service& operator=(const podman_service&) = delete;
    ~podman_service();

    // "unix:///tmp/rct-XXXX/podman.sock" or "tcp://127.0.0.1:PORT".
    const std::string& uri() const noexcept { return uri_; }
    const std::filesystem::path& dir() const noexcept { return dir_; }

    // `podman <this service's storage flags> args...`
    command_result podman(std::vector<std::string> args) const;

    // Stops the API service (an engine going away); its containers keep
    // running under conmon, and the destructor still removes them.
    void stop_service() noexcept;

    // How long the constructor took (image import + service start).
    std::chrono::milliseconds startup_time() const noexcept { return startup_; }

private:
    std::vector<std::string> global_flags() const;
    void wait_until_ready();
    void shut_down() noexcept;

    std::filesystem::path dir_;
    std::string conf_;
    std::string uri_;
    std::string storage_driver_;
    std::uint16_t tcp_port_ = 0;
    pid_t pid_ = -1;
    std::chrono::milliseconds startup_{0};
};

// The service shared by the tests of one process (started on first use).
podman_service& shared_podman();

// A free TCP port on 127.0.0.1 (bound and released: racy but fine here).
std::uint16_t free_tcp_port();

// Unique per process and call: for container names and label values.
std::string unique_name(const std::string& prefix);

// ---- running coroutines on an io_context

struct detached {
    struct promise_type {
        detached get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }
    };
};

[[noreturn]] void abort_hung(std::chrono::seconds limit);

template <typename T>
detached drive(registry::task<T> t, std::optional<T>& out, std::exception_ptr& error, bool& done) {
    try {
        out.emplace(co_await std::move(t));
    } catch (...) {
        error = std::current_exception();
    }
    done = true;
}

inline detached drive_void(registry::task<void> t, std::exception_ptr& error, bool& done) {
    try {
        co_await std::move(t);
    } catch (...) {
        error = std::current_exception();
    }
    done = true;
}

// Runs `t` on `io` (on this thread) until it completes; returns its value or
// rethrows. A test hung for `limit` aborts the process.
template <typename T>
T run(boost::asio::io_context& io, registry::task<T> t, std::chrono::seconds limit = std::chrono::seconds(120)) {
    io.restart();
    bool done = false;
    std::exception_ptr error;
    std::optional<std::conditional_t<std::is_void_v<T>, char, T>> out;
    if constexpr (std::is_void_v<T>) {
        drive_void(std::move(t), error, done);
    } else {
        drive(std::move(t), out, error, done);
    }
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done) {
        if (std::chrono::steady_clock::now() > deadline) abort_hung(limit);
        io.run_one_for(std::chrono::milliseconds(100));
    }
    // Let whatever the task left behind (closed sockets' handlers) finish.
    io.poll();
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<T>) return std::move(*out);
}

}  // namespace registry_test
