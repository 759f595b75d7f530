// The web console registryd serves at /ui/ (clients/console, embedded at
// build time by cmake/embed_console.cmake). GET / redirects there.
// Free of Beast, for tests.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace registryd {

struct console_file {
    std::string_view name;  // "index.html", "console.js", ...
    std::string_view bytes;
};
extern const console_file console_files[];
extern const std::size_t console_file_count;

struct console_answer {
    unsigned status = 200;
    std::string_view body;
    std::string_view content_type;
    std::string_view location;  // with 301/302
};

// nullopt: `path` (without the query) is neither "/" nor under /ui.
std::optional<console_answer> answer_console(std::string_view method, std::string_view path);

// The headers every console answer carries: the page may load only its own
// files and talk only to its own origin, and may not be framed.
inline constexpr std::string_view console_security_policy =
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

}  // namespace registryd
