// One REPL execution as the executor sees it: what is asked (request), what it
// tells while it runs (listener) and how it ended (outcome).
#pragma once

#include <registry/container.hpp>
#include <registry/error.hpp>
#include <registry/ports/clock.hpp>
#include <registry/resource_usage.hpp>
#include <registry/repl/language.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry::repl {

struct source_file {
    std::string name;  // relative path, "lib/util.py"; the first file is the entry point
    std::string content;
};

struct request {
    std::string language;
    std::optional<std::string> version;  // absent: the language's default version
    // `code` arrives as one file with an empty name: it gets language::source_file.
    std::vector<source_file> files;
    std::optional<std::string> stdin_data;
    std::vector<std::string> args;
    limit_overrides limits;
    std::optional<std::string> idempotency_key;
};

struct compile_outcome {
    int exit_code = 0;
    std::string stdout_data;
    std::string stderr_data;
};

struct outcome {
    std::string execution_id;
    std::string language;
    std::string version;  // of the language, the one that ran
    std::string engine;  // the engine it ran on; empty if it never got one
    // The program's exit status as the engine reports it; absent when the
    // executor killed it (timeout, output cap, cancel) or it never ran.
    std::optional<int> exit_code;
    // Set when the program was killed: by the executor (SIGKILL), or by a
    // signal the engine reports as exit status 128+N.
    std::optional<int> signal;
    std::string stdout_data;  // capped at limits.output_bytes (both streams together)
    std::string stderr_data;
    bool truncated = false;   // the output cap was reached (and the program killed)
    bool timed_out = false;
    bool cancelled = false;
    milliseconds duration{0};  // from start to exit (compile included)
    std::optional<compile_outcome> compile;  // languages with a compile step, once it ran
    std::optional<error> failure;  // the execution could not be carried out (engine error, image missing)
    // Who and when (result_store.hpp keeps them): the identity that submitted
    // it, when it was accepted, when its program was handed to its container
    // (absent if it never was), when it finished.
    std::string owner;
    time_point submitted_at{};
    std::optional<time_point> started_at;
    time_point finished_at{};
    resource_usage usage;  // its container's CPU time and peak memory, as the engine reported them
};

// What an execution reports, in order: on_queued (zero or more times, while it
// waits for an engine), on_output (as the program writes), on_finished once.
// Called on the executor's thread; must not call back into the executor.
class listener {
public:
    virtual ~listener() = default;
    virtual void on_queued(const std::string& execution_id, std::size_t position) = 0;  // 1: next to run
    virtual void on_output(const std::string& execution_id, output_stream stream, std::uint64_t seq,
                           std::string_view data) = 0;
    virtual void on_finished(const outcome& result) = 0;
};

using listener_ptr = std::shared_ptr<listener>;

}  // namespace registry::repl
