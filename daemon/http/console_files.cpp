#include "http/console_files.hpp"

namespace registryd {

namespace {

std::string_view type_of(std::string_view name) {
    if (name.ends_with(".html")) return "text/html; charset=utf-8";
    if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
    if (name.ends_with(".css")) return "text/css; charset=utf-8";
    return "application/octet-stream";
}

}  // namespace

std::optional<console_answer> answer_console(std::string_view method, std::string_view path) {
    const bool ui = path == "/ui" || path.starts_with("/ui/");
    if (path != "/" && !ui) return std::nullopt;
    if (method != "GET") return console_answer{405, "method not allowed\n", "text/plain", {}};
    if (path == "/") return console_answer{302, {}, "text/plain", "/ui/"};
    if (path == "/ui") return console_answer{301, {}, "text/plain", "/ui/"};
    std::string_view name = path.substr(4);
    if (name.empty()) name = "index.html";
    for (std::size_t i = 0; i < console_file_count; ++i) {
        if (console_files[i].name == name) return console_answer{200, console_files[i].bytes, type_of(name), {}};
    }
    return console_answer{404, "not found\n", "text/plain", {}};
}

}  // namespace registryd
