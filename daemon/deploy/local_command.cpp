#include "deploy/local_command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace registryd {

namespace {

constexpr std::size_t output_cap = 64 * 1024;

struct pipe_pair {
    int read = -1;
    int write = -1;
    ~pipe_pair() {
        if (read >= 0) ::close(read);
        if (write >= 0) ::close(write);
    }
};

bool open_pipe(pipe_pair& p) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    p.read = fds[0];
    p.write = fds[1];
    ::fcntl(p.read, F_SETFL, O_NONBLOCK);
    return true;
}

// Reads what is there; false at end of file or on an error.
bool drain(int fd, std::string& out) {
    char buf[16384];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            out.append(buf, static_cast<std::size_t>(n));
            if (out.size() > output_cap) out.erase(0, out.size() - output_cap);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
        return false;
    }
}

}  // namespace

registry::result<registry::command_result> run_local_command(const registry::target_command& command,
                                                             const script_user* as) {
    using clock = std::chrono::steady_clock;
    pipe_pair out, err;
    if (!open_pipe(out) || !open_pipe(err)) {
        return registry::fail(registry::errc::internal, std::string("pipe: ") + std::strerror(errno));
    }
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : command.env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string sh = "sh", dash_c = "-c", script = command.script;
    std::vector<char*> argv{sh.data(), dash_c.data(), script.data(), nullptr};
    const char* program = "/bin/sh";
    // setpriv execs /bin/sh as the user: one process, same pid and process
    // group, so the timeout's kill and the exit status are the script's.
    std::string setpriv = "setpriv", reuid, regid, init_groups = "--init-groups", end = "--", bin_sh = "/bin/sh";
    if (as && as->switch_to) {
        reuid = "--reuid=" + std::to_string(as->uid);
        regid = "--regid=" + std::to_string(as->gid);
        argv = {setpriv.data(), reuid.data(), regid.data(), init_groups.data(), end.data(), bin_sh.data(),
                dash_c.data(), script.data(), nullptr};
        program = "/usr/bin/setpriv";
    }

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out.write, 1);
    posix_spawn_file_actions_adddup2(&actions, err.write, 2);
    // Nothing else of registryd's: its sockets (Asio opens them without
    // close-on-exec) would otherwise live on in every service a deploy
    // starts, keeping clients' connections open after registryd closed them.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_init(&attr);
    // Its own process group: a timeout kills everything it started, and a
    // signal to registryd's group does not reach the services it starts.
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    pid_t pid = -1;
    const int spawned = ::posix_spawn(&pid, program, &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (spawned != 0) {
        return registry::fail(registry::errc::internal, std::string("spawn ") + program + ": " + std::strerror(spawned));
    }
    ::close(out.write);
    ::close(err.write);
    out.write = err.write = -1;

    registry::command_result r;
    const auto deadline = clock::now() + command.timeout;
    bool out_open = true, err_open = true;
    for (;;) {
        int status = 0;
        const pid_t w = ::waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            if (out_open) drain(out.read, r.stdout_text);
            if (err_open) drain(err.read, r.stderr_text);
            r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            break;
        }
        if (clock::now() >= deadline) {
            ::kill(-pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            if (out_open) drain(out.read, r.stdout_text);
            if (err_open) drain(err.read, r.stderr_text);
            r.timed_out = true;
            break;
        }
        // Short polls: the shell's exit is noticed within 20 ms even when
        // a background child keeps the pipes open.
        std::array<pollfd, 2> fds{pollfd{out_open ? out.read : -1, POLLIN, 0}, pollfd{err_open ? err.read : -1, POLLIN, 0}};
        ::poll(fds.data(), fds.size(), 20);
        if (out_open && fds[0].revents) out_open = drain(out.read, r.stdout_text);
        if (err_open && fds[1].revents) err_open = drain(err.read, r.stderr_text);
    }
    return r;
}

}  // namespace registryd
