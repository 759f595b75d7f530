#include "podman_harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#ifndef REGISTRY_SOURCE_DIR
#error "REGISTRY_SOURCE_DIR must be defined"
#endif
#ifndef REGISTRY_IMAGE_CACHE_DIR
#error "REGISTRY_IMAGE_CACHE_DIR must be defined"
#endif

namespace registry_test {

namespace fs = std::filesystem;

namespace {

std::vector<char*> c_argv(std::vector<std::string>& argv) {
    std::vector<char*> out;
    for (auto& a : argv) out.push_back(a.data());
    out.push_back(nullptr);
    return out;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Unescapes the octal escapes of /proc/self/mountinfo paths ("\040" for a space).
std::string unescape_mount_path(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            const std::string oct = s.substr(i + 1, 3);
            if (oct.size() == 3 && std::all_of(oct.begin(), oct.end(), [](char c) { return c >= '0' && c <= '7'; })) {
                out += static_cast<char>(std::stoi(oct, nullptr, 8));
                i += 3;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

// Unmounts everything mounted under `dir`, deepest first.
void unmount_under(const fs::path& dir) {
    std::ifstream in("/proc/self/mountinfo");
    std::vector<std::string> points;
    std::string line;
    const std::string prefix = dir.string() + "/";
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string id, parent, devno, root, point;
        fields >> id >> parent >> devno >> root >> point;
        point = unescape_mount_path(point);
        if (point.starts_with(prefix)) points.push_back(point);
    }
    std::sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    for (const auto& p : points) ::umount2(p.c_str(), MNT_DETACH);
}

bool try_connect_unix(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
}

bool try_connect_tcp(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

command_result run_command(const std::vector<std::string>& argv_in, const std::string& containers_conf) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    std::vector<std::string> argv = argv_in;
    auto args = c_argv(argv);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::dup2(pipefd[1], 1);
        ::dup2(pipefd[1], 2);
        const int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0) ::dup2(devnull, 0);
        if (!containers_conf.empty()) ::setenv("CONTAINERS_CONF", containers_conf.c_str(), 1);
        ::execvp(args[0], args.data());
        std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    ::close(pipefd[1]);
    command_result r;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(pipefd[0], buf, sizeof buf);
        if (n > 0) {
            r.output.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    ::close(pipefd[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

podman_service::podman_service(listen_on where, std::string storage_driver)
    : storage_driver_(std::move(storage_driver)) {
    const auto begin = std::chrono::steady_clock::now();
    // Short: the socket path must fit in sockaddr_un (108 bytes).
    char tmpl[] = "/tmp/rct-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    try {
        conf_ = (dir_ / "containers.conf").string();
        {
            std::ofstream conf(conf_);
            conf << "# Written by the container tests. What Podman needs on this kind of VM:\n"
                    "[containers]\n"
                    "default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n"
                    "\n"
                    "[engine]\n"
                    "runtime = \"runc\"\n";
        }
        fs::create_directories(dir_ / "tmp");

        // The image: built once per build directory, imported per service.
        const fs::path cache = REGISTRY_IMAGE_CACHE_DIR;
        const fs::path tarball = cache / "registry-busybox.tar.gz";
        if (!fs::exists(tarball)) {
            auto built = run_command({std::string(REGISTRY_SOURCE_DIR) + "/tests/containers/build-images.sh", cache.string()});
            if (built.exit_code != 0) throw std::runtime_error("build-images.sh failed: " + built.output);
        }
        auto imported = podman({"import", "--change", "CMD [\"/bin/sh\"]", tarball.string(), test_image});
        if (imported.exit_code != 0) {
            throw std::runtime_error("podman import failed (is podman installed? scripts/setup-containers.sh): " +
                                     imported.output);
        }

        if (where == listen_on::unix_socket) {
            uri_ = "unix://" + (dir_ / "podman.sock").string();
        } else {
            tcp_port_ = free_tcp_port();
            uri_ = "tcp://127.0.0.1:" + std::to_string(tcp_port_);
        }

        std::vector<std::string> argv{"podman"};
        for (auto& f : global_flags()) argv.push_back(std::move(f));
        argv.insert(argv.end(), {"system", "service", "--time=0", uri_});
        auto args = c_argv(argv);
        const std::string log = (dir_ / "service.log").string();
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            ::setpgid(0, 0);
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (::getppid() != parent) ::_exit(1);
            const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (out >= 0) {
                ::dup2(out, 1);
                ::dup2(out, 2);
            }
            const int devnull = ::open("/dev/null", O_RDONLY);
            if (devnull >= 0) ::dup2(devnull, 0);
            ::setenv("CONTAINERS_CONF", conf_.c_str(), 1);
            ::execvp("podman", args.data());
            std::fprintf(stderr, "exec podman: %s\n", std::strerror(errno));
            ::_exit(127);
        }
        wait_until_ready();
    } catch (...) {
        shut_down();
        throw;
    }
    startup_ = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - begin);
}

podman_service::~podman_service() { shut_down(); }

std::vector<std::string> podman_service::global_flags() const {
    return {"--root",    (dir_ / "root").string(), "--runroot",       (dir_ / "runroot").string(),
            "--tmpdir",  (dir_ / "tmp").string(),  "--storage-driver", storage_driver_};
}

command_result podman_service::podman(std::vector<std::string> args) const {
    std::vector<std::string> argv{"podman"};
    for (auto& f : global_flags()) argv.push_back(std::move(f));
    for (auto& a : args) argv.push_back(std::move(a));
    return run_command(argv, conf_);
}

void podman_service::wait_until_ready() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    const std::string sock = (dir_ / "podman.sock").string();
    for (;;) {
        const bool up = tcp_port_ ? try_connect_tcp(tcp_port_) : try_connect_unix(sock);
        if (up) return;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("podman system service exited: " + read_file(dir_ / "service.log"));
        }
        if (std::chrono::steady_clock::now() > deadline) {
            throw std::runtime_error("podman system service did not come up in 30 s: " + read_file(dir_ / "service.log"));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

void podman_service::shut_down() noexcept {
    if (dir_.empty()) return;
    try {
        // Containers outlive the service (conmon keeps them): remove them first.
        if (fs::exists(dir_ / "root")) podman({"rm", "--all", "--force", "--time", "0"});
    } catch (...) {
    }
    stop_service();
    unmount_under(dir_);
    std::error_code ec;
    fs::remove_all(dir_, ec);
    dir_.clear();
}

void podman_service::stop_service() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    int status = 0;
    for (;;) {
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_ || (r < 0 && errno != EINTR)) break;
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
}

podman_service& shared_podman() {
    static podman_service service;
    return service;
}

std::uint16_t free_tcp_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("bind failed");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

std::string unique_name(const std::string& prefix) {
    static std::atomic<unsigned> counter{0};
    return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

void abort_hung(std::chrono::seconds limit) {
    std::fprintf(stderr, "test hung: no completion within %lld s\n", static_cast<long long>(limit.count()));
    std::fflush(stderr);
    std::abort();
}

}  // namespace registry_test
