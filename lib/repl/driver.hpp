// What runs inside a REPL container: the uploaded files and the driver script.
//
// A container is started before its program is known (warm containers long
// before): its fixed command waits until /work/.repl/go exists, then runs
// the driver /work/.repl/run.sh. The executor attaches to the waiting
// container, then uploads the sources, the stdin, the driver and, last, `go`
// into the work dir (a tmpfs: Podman extracts an archive for a running
// container inside its mount namespace), so no output can be lost and the
// expensive start is off the execution's path.
//
// The driver runs the compile step if there is one with its output in the
// normal streams, then prints a marker line on both streams (where compile
// output ends, and what the compile step returned), runs the program with
// /work/.repl/stdin or /dev/null as its stdin, and prints an exit marker
// line with its status on both streams: the executor knows the program has
// ended, and how, as soon as both arrive, without waiting for the container
// to stop. The driver then sleeps instead of exiting: the container, and with
// it its cgroup's CPU and memory figures, stays until the executor has read
// them and removes it.
#pragma once

#include <registry/container.hpp>
#include <registry/repl/execution.hpp>
#include <registry/repl/language.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry::repl::detail {

inline constexpr std::string_view work_dir = "/work";
inline constexpr std::string_view reserved_dir = ".repl";  // in work_dir: the driver's files

// The container's command.
std::vector<std::string> driver_command();

// 'text' for sh, whatever it contains but NUL.
std::string shell_quote(std::string_view text);

// Every file to upload to work_dir: the sources, .repl/stdin, .repl/run.sh and
// then .repl/go, which starts it.
std::vector<archive_file> upload(const language& lang, const request& req, std::string_view execution_id);

// The start of the marker line: "\n@@registry-repl-compiled <id> ".
std::string compile_marker(std::string_view execution_id);

// The start of the exit marker line: "@@registry-repl-exit <id> ".
std::string exit_marker(std::string_view execution_id);

// One output stream of the program, up to the exit marker line: passed on as
// it arrives but for a trailing piece that could be the marker's beginning.
class exit_filter {
public:
    explicit exit_filter(std::string marker) : marker_(std::move(marker)) {}

    // Appends to `out` what is certainly the program's; nothing once the
    // marker line has been seen.
    void feed(std::string_view bytes, std::string& out);
    // At the end: whatever is held back.
    void finish(std::string& out);

    std::optional<int> status() const noexcept { return status_; }

private:
    std::string marker_;
    std::string held_;
    std::optional<int> status_;
};

// One output stream of a compiled language, split at the marker line.
class compile_splitter {
public:
    explicit compile_splitter(std::string marker) : marker_(std::move(marker)) {}

    // Before the marker: appends to compile_out (held back until the marker
    // line is complete); after it: to run_out.
    void feed(std::string_view bytes, std::string& compile_out, std::string& run_out);
    // At the end: whatever compile output is still held back.
    void finish(std::string& compile_out);

    bool compiled() const noexcept { return status_.has_value(); }
    std::optional<int> status() const noexcept { return status_; }
    std::size_t held() const noexcept { return pending_.size(); }

private:
    std::string marker_;
    std::string pending_;
    std::optional<int> status_;
};

}  // namespace registry::repl::detail
