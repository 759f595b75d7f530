#include "deploy_support.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace it::deploy {

namespace fs = std::filesystem;

std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        if (fd >= 0) ::close(fd);
        throw failure("free_port: cannot bind");
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

namespace {

std::string yaml_list(const std::vector<std::string>& items) {
    std::string s = "[";
    for (std::size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + items[i];
    return s + "]";
}

}  // namespace

fs::path build_package(const fs::path& work, const package_options& o) {
    const fs::path src = work / ("src-" + o.version + (o.healthy ? "" : "-sick"));
    fs::remove_all(src);
    fs::copy(fs::path(REGISTRY_PACKAGES_DIR) / "static-site", src, fs::copy_options::recursive);
    {
        std::ofstream m(src / "manifest.yaml", std::ios::trunc);
        m << "name: static-site\n"
          << "version: " << o.version << "\n"
          << "description: integration test build\n"
          << "service:\n  type: managed_process\n  ports:\n    - {name: http, port: " << o.port << ", protocol: http}\n"
          << "requires:\n  commands: " << yaml_list(o.commands) << "\n  libraries: " << yaml_list(o.libraries) << "\n"
          << "depends_on: " << yaml_list(o.depends_on) << "\n"
          << "health:\n  script: scripts/health.sh\n  interval: 300ms\n  timeout: 3s\n  deadline: " << o.deadline
          << "\n";
    }
    std::ofstream(src / "www" / "index.html", std::ios::trunc) << "static-site " << o.version << "\n";
    if (!o.healthy) {
        std::ofstream(src / "scripts" / "health.sh", std::ios::trunc) << "#!/bin/sh\necho 'database unreachable'\nexit 2\n";
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

std::string fetch_index(std::uint16_t port) {
    try {
        auto r = http_get("127.0.0.1", port, "/", ms(2000));
        return r.status == 200 ? r.body : "";
    } catch (const failure&) {
        return "";
    }
}

}  // namespace it::deploy
