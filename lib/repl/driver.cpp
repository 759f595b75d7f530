#include "driver.hpp"

#include <algorithm>
#include <charconv>

namespace registry::repl::detail {

namespace {

std::string with_source(std::string_view arg, std::string_view source) {
    static constexpr std::string_view placeholder = "{source}";
    std::string out;
    std::size_t from = 0;
    for (std::size_t at; (at = arg.find(placeholder, from)) != std::string_view::npos; from = at + placeholder.size()) {
        out.append(arg.substr(from, at - from));
        out.append(source);
    }
    out.append(arg.substr(from));
    return out;
}

std::string command_line(const std::vector<std::string>& argv, std::string_view source,
                         const std::vector<std::string>& extra = {}) {
    std::string line;
    for (const auto& a : argv) line += shell_quote(with_source(a, source)) + ' ';
    for (const auto& a : extra) line += shell_quote(a) + ' ';
    return line;
}

std::string driver_script(const language& lang, const request& req, std::string_view execution_id) {
    const std::string& entry = req.files.front().name;
    std::string s =
        "# The REPL executor's driver (registry). See lib/repl/driver.hpp.\n"
        "cd /work || exit 125\n";
    if (!lang.compile.empty()) {
        s += "{ " + command_line(lang.compile, entry) + "; } </dev/null\n";
        s += "rc=$?\n";
        s += "printf '\\n@@registry-repl-compiled %s %d\\n' " + shell_quote(execution_id) + " \"$rc\"\n";
        s += "printf '\\n@@registry-repl-compiled %s %d\\n' " + shell_quote(execution_id) + " \"$rc\" >&2\n";
        s += "[ \"$rc\" -eq 0 ] || exit \"$rc\"\n";
    }
    s += command_line(lang.run, entry, req.args) + (req.stdin_data ? "</work/.repl/stdin\n" : "</dev/null\n");
    s += "rc=$?\n";
    s += "printf '@@registry-repl-exit %s %d\\n' " + shell_quote(execution_id) + " \"$rc\"\n";
    s += "printf '@@registry-repl-exit %s %d\\n' " + shell_quote(execution_id) + " \"$rc\" >&2\n";
    // The container stays up (the executor removes it) so that its cgroup's
    // figures can still be read once the program has ended (usage.cpp).
    s += "exec sleep 86400\n";
    return s;
}

}  // namespace

std::vector<std::string> driver_command() {
    return {"/bin/sh", "-c", "while [ ! -e /work/.repl/go ]; do sleep 0.05; done; exec /bin/sh /work/.repl/run.sh"};
}

std::string shell_quote(std::string_view text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out.push_back(c);
        }
    }
    out += '\'';
    return out;
}

std::vector<archive_file> upload(const language& lang, const request& req, std::string_view execution_id) {
    std::vector<archive_file> files;
    files.reserve(req.files.size() + 3);
    for (const auto& f : req.files) files.push_back({f.name, f.content, 0644});
    if (req.stdin_data) files.push_back({".repl/stdin", *req.stdin_data, 0644});
    files.push_back({".repl/run.sh", driver_script(lang, req, execution_id), 0644});
    files.push_back({".repl/go", "", 0644});  // last: the archive is extracted in order
    return files;
}

std::string compile_marker(std::string_view execution_id) {
    return "\n@@registry-repl-compiled " + std::string(execution_id) + " ";
}

std::string exit_marker(std::string_view execution_id) {
    return "@@registry-repl-exit " + std::string(execution_id) + " ";
}

void exit_filter::feed(std::string_view bytes, std::string& out) {
    if (status_) return;
    held_.append(bytes);
    const std::size_t at = held_.find(marker_);
    if (at != std::string::npos) {
        out.append(held_, 0, at);
        held_.erase(0, at);
        const std::size_t eol = held_.find('\n', marker_.size());
        if (eol == std::string::npos) return;  // the status has not arrived yet
        int status = 0;
        std::from_chars(held_.data() + marker_.size(), held_.data() + eol, status);
        status_ = status;
        held_.clear();
        return;
    }
    // Keep the longest tail that the marker starts with.
    std::size_t keep = std::min(held_.size(), marker_.size() - 1);
    while (keep > 0 && held_.compare(held_.size() - keep, keep, marker_, 0, keep) != 0) --keep;
    out.append(held_, 0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
}

void exit_filter::finish(std::string& out) {
    if (!status_) out += held_;
    held_.clear();
}

void compile_splitter::feed(std::string_view bytes, std::string& compile_out, std::string& run_out) {
    if (status_) {
        run_out.append(bytes);
        return;
    }
    pending_.append(bytes);
    const std::size_t at = pending_.find(marker_);
    if (at == std::string::npos) return;
    const std::size_t eol = pending_.find('\n', at + marker_.size());
    if (eol == std::string::npos) return;  // the status has not arrived yet
    int status = 0;
    const char* first = pending_.data() + at + marker_.size();
    std::from_chars(first, pending_.data() + eol, status);
    status_ = status;
    compile_out.append(pending_, 0, at);
    run_out.append(pending_, eol + 1);
    pending_.clear();
}

void compile_splitter::finish(std::string& compile_out) {
    compile_out += pending_;
    pending_.clear();
}

}  // namespace registry::repl::detail
