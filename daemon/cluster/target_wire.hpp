// The JSON of a member's deploy targets on the wire: the writer asks a member
// (a standby registryd) to run commands on a target it offers, by HTTP
// requests whose bodies and answers are these.
//
//   run request           {"script": str, "env": {str: str}, "timeout_ms": uint, "package_script": bool}
//   run_sequence request  {"commands": [{<run request's fields>, "then_only_if_silent": bool}]}
//   a command's result    {"exit_code": int, "timed_out": bool, "stdout": str, "stderr": str}
//   an error              {"code": "<errc name>", "message": str}
//   run_sequence answer   {"results": [<command's result> | <error>]}  (an element with "code" is an error)
//
// Every field above is required but an error's message. Decoding treats its
// input as hostile: a problem is errc::invalid_request naming the field
// ("commands[3].timeout_ms: must be 1-86400000"), within the bounds below;
// fields it does not know are skipped (a newer registryd's), a field given
// twice is refused. An error whose code this registryd does not know is
// errc::internal, its message kept.
//
// JSON strings are UTF-8: a command's output is made so when it is encoded
// (U+FFFD for what is not, the tail kept within max_output_bytes); a script or
// an environment that is not UTF-8 cannot be sent (the other side refuses it
// as not valid JSON), nor one with a NUL byte (refused when decoded: a
// command line cannot carry it).
#pragma once

#include <registry/ports/deploy_target.hpp>
#include <registry/result.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace registryd {

namespace target_wire_limits {
inline constexpr std::size_t max_script_bytes = 256 * 1024;
inline constexpr std::size_t max_env_entries = 256;
inline constexpr std::size_t max_env_key_bytes = 256;
inline constexpr std::size_t max_env_value_bytes = 64 * 1024;
inline constexpr std::uint64_t max_timeout_ms = 86'400'000;  // a day
inline constexpr std::size_t max_commands = 64;
inline constexpr std::size_t max_output_bytes = 1024 * 1024;  // stdout, stderr each
inline constexpr std::size_t max_message_bytes = 64 * 1024;
}  // namespace target_wire_limits

std::string encode_target_command(const registry::target_command& c);
registry::result<registry::target_command> decode_target_command(std::string_view json);

std::string encode_command_sequence(const std::vector<registry::sequenced_command>& commands);
registry::result<std::vector<registry::sequenced_command>> decode_command_sequence(std::string_view json);

std::string encode_command_result(const registry::command_result& r);
registry::result<registry::command_result> decode_command_result(std::string_view json);

// Only the code and the message travel (not an invalid_request's fields).
std::string encode_target_error(const registry::error& e);
// The error `json` carries; invalid_request if it is not one.
registry::result<registry::error> decode_target_error(std::string_view json);

std::string encode_sequence_results(const std::vector<registry::result<registry::command_result>>& results);
registry::result<std::vector<registry::result<registry::command_result>>> decode_sequence_results(
    std::string_view json);

}  // namespace registryd
