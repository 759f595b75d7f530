#include "config/command_line.hpp"

#include <utility>

namespace registryd {

namespace {

[[noreturn]] void fail(std::string message) { throw config_error(std::move(message)); }

bool is_flag(std::string_view arg, std::string_view name, std::optional<std::string_view>& inline_value) {
    if (arg == name) {
        inline_value.reset();
        return true;
    }
    if (arg.size() > name.size() && arg.substr(0, name.size()) == name && arg[name.size()] == '=') {
        inline_value = arg.substr(name.size() + 1);
        return true;
    }
    return false;
}

}  // namespace

command_line parse_command_line(int argc, const char* const* argv) {
    command_line cli;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        std::optional<std::string_view> inline_value;
        auto value = [&](std::string_view flag) -> std::string {
            if (inline_value) {
                if (inline_value->empty()) fail(std::string(flag) + ": empty value");
                return std::string(*inline_value);
            }
            if (i + 1 >= argc) fail(std::string(flag) + ": missing value");
            return std::string(argv[++i]);
        };
        if (arg == "-h" || arg == "--help") {
            cli.help = true;
        } else if (arg == "--version") {
            cli.version = true;
        } else if (is_flag(arg, "--config", inline_value)) {
            cli.config_file = value("--config");
        } else if (is_flag(arg, "--check-config", inline_value)) {
            cli.config_file = value("--check-config");
            cli.check_config = true;
        } else if (is_flag(arg, "--listen", inline_value)) {
            const std::string v = value("--listen");
            try {
                cli.listen = parse_listen_address(v);
            } catch (const config_error& e) {
                fail(std::string("--listen: ") + e.what());
            }
        } else if (is_flag(arg, "--data-dir", inline_value)) {
            cli.data_dir = value("--data-dir");
        } else if (is_flag(arg, "--port-file", inline_value)) {
            cli.port_file = value("--port-file");
        } else if (is_flag(arg, "--log-level", inline_value)) {
            const std::string v = value("--log-level");
            auto l = log::parse_level(v);
            if (!l) fail("--log-level: must be one of debug, info, warn, error (got \"" + v + "\")");
            cli.log_level = *l;
        } else {
            fail("unknown argument \"" + std::string(arg) + "\"");
        }
    }
    return cli;
}

std::string usage(std::string_view program) {
    std::string s;
    s += "Usage: ";
    s += program;
    s += " [OPTIONS]\n"
         "\n"
         "The service registry daemon: WebSocket API, /healthz, /metrics and /v1/services on one port.\n"
         "\n"
         "Options:\n"
         "  --config FILE       YAML configuration (see registryd.example.yaml); without it,\n"
         "                      built-in defaults apply\n"
         "  --listen HOST:PORT  address to listen on (default 127.0.0.1:8080; port 0 picks\n"
         "                      a free port; IPv6 as [::1]:8080); overrides `listen`\n"
         "  --data-dir DIR      durable state directory (default ./registry-data);\n"
         "                      overrides `data_dir`\n"
         "  --port-file FILE    once listening, write \"HOST:PORT\\n\" of the bound address\n"
         "                      to FILE (atomically: temporary file + rename)\n"
         "  --log-level LEVEL   debug, info, warn or error; overrides `log.level`\n"
         "  --check-config FILE validate FILE (and the other flags) as --config would, print\n"
         "                      \"FILE: ok\" and exit 0, or the error and exit 2\n"
         "  --version           print the version and exit\n"
         "  -h, --help          print this help and exit\n"
         "\n"
         "Commands (they exit at once; see `registryd token new --help`):\n"
         "  token new --name NAME --role ROLE [--services PATTERN...] [--tokens-file FILE]\n"
         "                      print a fresh access token and its tokens-file entry\n"
         "  roles [--markdown]  print the roles and the permission families they hold\n"
         "\n"
         "Flags also accept --flag=VALUE. Exit status: 0 after a clean shutdown (SIGTERM or\n"
         "SIGINT), 1 on a runtime failure (e.g. the data directory is locked), 2 on a bad\n"
         "flag or configuration.\n";
    return s;
}

}  // namespace registryd
