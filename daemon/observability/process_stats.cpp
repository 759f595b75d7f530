#include "observability/process_stats.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace registryd {

namespace {

// The boot time, in seconds since the epoch ("btime" of /proc/stat):
// /proc/self/stat gives the start time in clock ticks after it.
std::optional<double> boot_time() {
    std::ifstream in("/proc/stat");
    std::string key;
    while (in >> key) {
        if (key == "btime") {
            double t = 0;
            if (in >> t) return t;
            return std::nullopt;
        }
        in.ignore(1 << 20, '\n');
    }
    return std::nullopt;
}

std::uint64_t count_open_fds() {
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir) return 0;
    std::uint64_t n = 0;
    while (const dirent* e = ::readdir(dir)) {
        if (e->d_name[0] != '.') ++n;
    }
    ::closedir(dir);
    return n > 0 ? n - 1 : 0;  // less the descriptor of the listing itself
}

}  // namespace

std::optional<process_stats> read_process_stats() {
    std::ifstream in("/proc/self/stat");
    std::string line;
    if (!std::getline(in, line)) return std::nullopt;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, the
    // fields after the last ')' do not.
    const auto close = line.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(line.substr(close + 1));
    // Fields 3.. of proc(5): state is 3, utime 14, stime 15, starttime 22,
    // vsize 23, rss 24.
    std::string f;
    double utime = 0, stime = 0, starttime = 0;
    std::uint64_t vsize = 0, rss_pages = 0;
    for (int i = 3; i <= 24 && fields >> f; ++i) {
        switch (i) {
            case 14: utime = std::strtod(f.c_str(), nullptr); break;
            case 15: stime = std::strtod(f.c_str(), nullptr); break;
            case 22: starttime = std::strtod(f.c_str(), nullptr); break;
            case 23: vsize = std::strtoull(f.c_str(), nullptr, 10); break;
            case 24: rss_pages = std::strtoull(f.c_str(), nullptr, 10); break;
            default: break;
        }
    }
    if (!fields) return std::nullopt;

    const long ticks = ::sysconf(_SC_CLK_TCK);
    const long page = ::sysconf(_SC_PAGESIZE);
    if (ticks <= 0 || page <= 0) return std::nullopt;

    process_stats s;
    s.cpu_seconds = (utime + stime) / static_cast<double>(ticks);
    s.resident_bytes = rss_pages * static_cast<std::uint64_t>(page);
    s.virtual_bytes = vsize;
    s.start_time_seconds = boot_time().value_or(0) + starttime / static_cast<double>(ticks);
    s.open_fds = count_open_fds();
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) s.max_fds = static_cast<std::uint64_t>(rl.rlim_cur);
    return s;
}

}  // namespace registryd
