// What runs inside a REPL container: the uploaded files and the driver script
// that the container's fixed command (/bin/sh /repl/run.sh) executes. The
// command is the same for every container of a language, so warm containers
// can be created before their program is known.
//
// The driver copies /repl/src into the work dir (a tmpfs mounted at start,
// so it cannot be uploaded into directly), runs the compile step if there is
// one with its output in the normal streams, then prints a marker line on
// both streams, and runs the program (exec, so it is the container's main
// process) with /repl/stdin or /dev/null as its stdin. The marker tells the
// executor where compile output ends and what the compile step returned.
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

// The container's command.
std::vector<std::string> driver_command();

// 'text' for sh, whatever it contains but NUL.
std::string shell_quote(std::string_view text);

// Every file to upload to "/" before start: repl/run.sh, repl/src/..., repl/stdin.
std::vector<archive_file> upload(const language& lang, const request& req, std::string_view execution_id);

// The start of the marker line: "\n@@registry-repl-compiled <id> ".
std::string compile_marker(std::string_view execution_id);

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
