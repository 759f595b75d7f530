#include "deploy_support.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/wait.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

namespace it::deploy {

namespace fs = std::filesystem;


namespace {

std::string yaml_list(const std::vector<std::string>& items) {
    std::string s = "[";
    for (std::size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + items[i];
    return s + "]";
}

}  // namespace

fs::path build_package(const fs::path& work, const package_options& o) {
    const fs::path src = work / ("src-" + o.name + "-" + o.version + (o.healthy ? "" : "-sick"));
    fs::remove_all(src);
    fs::copy(fs::path(REGISTRY_PACKAGES_DIR) / "static-site", src, fs::copy_options::recursive);
    {
        std::ofstream m(src / "manifest.yaml", std::ios::trunc);
        m << "name: " << o.name << "\n"
          << "version: " << o.version << "\n"
          << "description: integration test build\n"
          << "service:\n  type: managed_process\n  ports:\n    - {name: http, port: " << o.port << ", protocol: http}\n"
          << "requires:\n  commands: " << yaml_list(o.commands) << "\n  libraries: " << yaml_list(o.libraries) << "\n"
          << "depends_on: " << yaml_list(o.depends_on) << "\n"
          << "health:\n  script: scripts/health.sh\n  interval: " << o.interval << "\n  timeout: 3s\n  deadline: "
          << o.deadline << "\n" << o.health_yaml;
    }
    if (o.failing_checks > 0 || o.count_checks || !o.health_prelude.empty()) {
        std::ifstream in(src / "scripts" / "health.sh");
        std::string shebang, rest;
        std::getline(in, shebang);
        rest.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        std::ofstream(src / "scripts" / "health.sh", std::ios::trunc)
            << shebang << "\n"
            << "n=$(cat \"$PACKAGE_DIR/run/checks\" 2>/dev/null || echo 0); n=$((n + 1))\n"
            << "echo \"$n\" >\"$PACKAGE_DIR/run/checks\"\n"
            << o.health_prelude
            << "if [ \"$n\" -le " << o.failing_checks << " ]; then echo \"warming up ($n)\"; exit 2; fi\n"
            << rest;
    }
    if (o.symlinks) {
        fs::create_symlink("index.html", src / "www" / "latest.html");
        fs::create_symlink("../config/site.conf", src / "www" / "site.conf");
    }
    if (o.padding_bytes > 0) {
        std::ifstream random("/dev/urandom", std::ios::binary);
        std::ofstream pad(src / "www" / "padding.bin", std::ios::binary | std::ios::trunc);
        std::vector<char> buf(1 << 20);
        for (std::uint64_t left = o.padding_bytes; left > 0;) {
            const auto n = static_cast<std::streamsize>(std::min<std::uint64_t>(left, buf.size()));
            random.read(buf.data(), n);
            pad.write(buf.data(), n);
            left -= static_cast<std::uint64_t>(n);
        }
    }
    std::ofstream(src / "www" / "index.html", std::ios::trunc) << "static-site " << o.version << "\n";
    if (!o.healthy) {
        std::ofstream(src / "scripts" / "health.sh", std::ios::trunc) << "#!/bin/sh\necho 'database unreachable'\nexit 2\n";
    }
    if (o.print_uid) {
        std::ofstream(src / "scripts" / "start.sh", std::ios::app) << "echo \"start.sh ran as uid $(id -u) gid $(id -g)\"\n";
    }
    if (o.stop_fails) {
        std::ofstream(src / "scripts" / "stop.sh", std::ios::trunc) << "#!/bin/sh\necho 'cannot stop: busy'\nexit 3\n";
    }
    const fs::path out = work / "archives";
    fs::create_directories(out);
    const std::string cmd = std::string(REGISTRY_PACK_PATH) + " '" + src.string() + "' '" + out.string() + "' 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) throw failure("cannot run registry-pack");
    std::string text;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) text += buf;
    const int rc = ::pclose(p);
    if (rc != 0) throw failure("registry-pack failed: " + text);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
}

std::vector<json::value> progress_events(ws_client& client, const std::string& id) {
    std::vector<json::value> out;
    for (;;) {
        auto ev = client.next_event(ms(0));
        if (!ev) break;
        if (str(*ev, "/event") == "deployment_progress" && str(*ev, "/request_id") == id) out.push_back(*ev);
    }
    return out;
}

std::vector<std::string> stages(const std::vector<json::value>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) {
        std::string s = str(e, "/data/stage");
        if (out.empty() || out.back() != s) out.push_back(s);
    }
    return out;
}

void kill_package_servers(const fs::path& prefix) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(prefix, ec)) {
        const fs::path pidfile = e.path() / "run" / "pid";
        std::ifstream in(pidfile);
        pid_t pid = 0;
        if (in >> pid && pid > 1) ::kill(pid, SIGKILL);
    }
}

namespace {

// The inodes of the sockets process `pid` has open ("socket:[N]" links).
std::set<std::string> socket_inodes(pid_t pid) {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::path("/proc") / std::to_string(pid) / "fd", ec)) {
        std::error_code link_ec;
        const std::string target = fs::read_symlink(e.path(), link_ec).string();
        if (target.starts_with("socket:")) out.insert(target);
    }
    return out;
}

}  // namespace

int shared_sockets(const fs::path& install_dir, pid_t other) {
    std::ifstream in(install_dir / "run" / "pid");
    pid_t pid = 0;
    if (!(in >> pid) || pid <= 1 || ::kill(pid, 0) != 0) return -1;
    const std::set<std::string> mine = socket_inodes(pid);
    const std::set<std::string> theirs = socket_inodes(other);
    return static_cast<int>(std::count_if(mine.begin(), mine.end(), [&](const std::string& s) { return theirs.contains(s); }));
}

long server_uid(const fs::path& install_dir) {
    std::ifstream in(install_dir / "run" / "pid");
    pid_t pid = 0;
    if (!(in >> pid) || pid <= 1) return -1;
    std::ifstream status(fs::path("/proc") / std::to_string(pid) / "status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("Uid:")) return std::stol(line.substr(4));  // real, effective, saved, fs: the first
    }
    return -1;
}

int health_runs(const fs::path& install_dir) {
    std::ifstream in(install_dir / "run" / "checks");
    int n = 0;
    in >> n;
    return n;
}

std::string fetch_index(std::uint16_t port) {
    try {
        auto r = http_get("127.0.0.1", port, "/", ms(2000));
        return r.status == 200 ? r.body : "";
    } catch (const failure&) {
        return "";
    }
}

}  // namespace it::deploy

namespace it::deploy {

namespace {

void run_checked(const std::string& cmd) {
    if (std::system(cmd.c_str()) != 0) throw failure("command failed: " + cmd);
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// "ssh-ed25519 AAAA..." of a .pub file (without the comment).
std::string public_key(const fs::path& pub) {
    std::istringstream in(slurp(pub));
    std::string type, key;
    in >> type >> key;
    return type + " " + key;
}

}  // namespace

sshd::sshd() {
    const fs::path d = dir_.path();
    for (const char* key : {"host_ed25519", "other_host_ed25519", "client_ed25519"}) {
        run_checked("ssh-keygen -q -t ed25519 -N '' -C registry-test -f '" + (d / key).string() + "'");
    }
    client_key_ = d / "client_ed25519";
    fs::copy_file(d / "client_ed25519.pub", d / "authorized_keys");
    port_ = free_port();
    const std::string host = "[127.0.0.1]:" + std::to_string(port_) + " ";
    known_hosts_ = d / "known_hosts";
    wrong_known_hosts_ = d / "wrong_known_hosts";
    empty_known_hosts_ = d / "empty_known_hosts";
    std::ofstream(known_hosts_) << host << public_key(d / "host_ed25519.pub") << "\n";
    std::ofstream(wrong_known_hosts_) << host << public_key(d / "other_host_ed25519.pub") << "\n";
    std::ofstream(empty_known_hosts_) << "";
    std::ofstream(d / "sshd_config") << "Port " << port_ << "\n"
                                     << "ListenAddress 127.0.0.1\n"
                                     << "HostKey " << (d / "host_ed25519").string() << "\n"
                                     << "PidFile " << (d / "sshd.pid").string() << "\n"
                                     << "AuthorizedKeysFile " << (d / "authorized_keys").string() << "\n"
                                     << "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
                                     << "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
                                     << "PermitRootLogin prohibit-password\n"
                                     << "Subsystem sftp internal-sftp\n";
    start();
}

void sshd::start() {
    const fs::path d = dir_.path();
    // sshd insists on its privilege separation directory (the Debian service
    // creates it at boot; a container may not have it).
    std::error_code ec;
    fs::create_directories("/run/sshd", ec);
    const std::string cfg = (d / "sshd_config").string();
    const std::string logfile = (d / "sshd.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
        const int fd = ::open(logfile.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) ::dup2(fd, 2);
        ::execl("/usr/sbin/sshd", "/usr/sbin/sshd", "-D", "-e", "-f", cfg.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    if (pid_ < 0) throw failure("fork failed");
    const auto deadline = steady::now() + scaled(ms(10000));
    for (;;) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port_);
        const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        if (up) break;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw failure("sshd exited at start: " + log());
        }
        if (steady::now() > deadline) throw failure("sshd did not come up: " + log());
        ::usleep(20000);
    }
}

sshd::~sshd() { stop(); }

namespace {

// The pids whose parent is `parent` (from /proc/*/stat).
std::vector<pid_t> children_of(pid_t parent) {
    std::vector<pid_t> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
        const std::string name = e.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream in(e.path() / "stat");
        std::string stat;
        std::getline(in, stat);
        const auto close = stat.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(stat.substr(close + 1));
        std::string state;
        pid_t ppid = 0;
        if (rest >> state >> ppid && ppid == parent) out.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return out;
}

}  // namespace

void sshd::stop() {
    if (pid_ <= 0) return;
    // The sessions' sshd processes first (they hold the connections), then
    // the listener. The commands they run are left to finish: killing a
    // login shell in its startup files can leave their locks behind (pyenv's
    // rehash lock makes every later ssh session wait a minute).
    std::vector<pid_t> tree = children_of(pid_);
    for (std::size_t i = 0; i < tree.size(); ++i) {
        for (pid_t child : children_of(tree[i])) tree.push_back(child);
    }
    for (pid_t p : tree) {
        std::ifstream comm("/proc/" + std::to_string(p) + "/comm");
        std::string name;
        if (std::getline(comm, name) && name == "sshd") ::kill(p, SIGKILL);
    }
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

int sshd::accepted_connections() const {
    std::istringstream in(log());
    int n = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.find("Accepted publickey") != std::string::npos) ++n;
    }
    return n;
}

std::string sshd::user() const {
    const passwd* pw = ::getpwuid(::getuid());
    return pw ? pw->pw_name : "root";
}

std::string sshd::log() const { return slurp(dir_.path() / "sshd.log"); }

std::string remote_host_yaml(const std::string& name, const sshd& ssh, const std::filesystem::path& known_hosts,
                             const std::filesystem::path& prefix) {
    return "    - name: " + name + "\n      host: 127.0.0.1\n      port: " + std::to_string(ssh.port()) +
           "\n      user: " + ssh.user() + "\n      identity_file: " + ssh.client_key().string() +
           "\n      known_hosts: " + known_hosts.string() + "\n      prefix: " + prefix.string() + "\n";
}

}  // namespace it::deploy
