#include "deploy/command_output.hpp"

#include <sstream>

namespace registry::deploy {

namespace {

constexpr std::size_t max_output = 4096;

}  // namespace

std::string quote(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    out += '\'';
    return out;
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

std::string output_of(const command_result& r) {
    std::string out = trimmed(r.stdout_text);
    std::string err = trimmed(r.stderr_text);
    if (!err.empty()) out += (out.empty() ? "" : "\n") + err;
    if (r.timed_out) out += (out.empty() ? "" : "\n") + std::string("(timed out)");
    if (out.size() > max_output) out.erase(0, out.size() - max_output);
    return out;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) out.push_back(line);
    }
    return out;
}

std::string seconds_text(milliseconds d) {
    std::ostringstream s;
    s << static_cast<double>(d.count()) / 1000.0 << "s";
    return s.str();
}

health_status status_of(const command_result& r) {
    if (r.timed_out) return health_status::critical;
    switch (r.exit_code) {
        case 0: return health_status::healthy;
        case 1: return health_status::warning;
        case 2: return health_status::critical;
        default: return health_status::unknown;
    }
}

}  // namespace registry::deploy
