// The JSON of a member's deploy targets (cluster/target_wire.hpp): what the
// writer sends a member and what comes back, read as hostile input.
#include "cluster/target_wire.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

using registry::command_result;
using registry::errc;
using registry::sequenced_command;
using registry::target_command;
using namespace registryd;
using namespace std::string_literals;

target_command sample_command() {
    target_command c;
    c.script = "echo \"hi\" && printf '%s\\n' \"$X\"";
    c.env = {{"PATH", "/usr/bin:/bin"}, {"X", "ünïcödé \t tab"}, {"EMPTY", ""}};
    c.timeout = registry::milliseconds(1234);
    c.package_script = true;
    return c;
}

bool same(const target_command& a, const target_command& b) {
    return a.script == b.script && a.env == b.env && a.timeout == b.timeout && a.package_script == b.package_script;
}

// The problem decoding `json` met; "" when it decoded.
template <typename Decode>
std::string problem(Decode decode, const std::string& json) {
    auto r = decode(json);
    if (r) return "";
    CHECK(r.err().code == errc::invalid_request);
    return r.err().message;
}

std::string command_json(const std::string& fields) {
    return R"({"script":"true","env":{},"timeout_ms":1000,"package_script":false)" + fields + "}";
}

std::string result_json(const std::string& fields) {
    return R"({"exit_code":0,"timed_out":false,"stdout":"","stderr":"")" + fields + "}";
}

}  // namespace

TEST_CASE("target wire: a run request round-trips, its environment and empty strings too") {
    const target_command c = sample_command();
    auto back = decode_target_command(encode_target_command(c));
    REQUIRE(back);
    CHECK(same(*back, c));

    target_command empty;
    empty.script = "";
    empty.timeout = registry::milliseconds(1);
    auto back_empty = decode_target_command(encode_target_command(empty));
    REQUIRE(back_empty);
    CHECK(same(*back_empty, empty));
}

TEST_CASE("target wire: a sequence round-trips with each command's then_only_if_silent") {
    std::vector<sequenced_command> seq{{sample_command(), true}, {sample_command(), false}};
    seq[1].command.script = "exit 3";
    seq[1].command.package_script = false;
    seq[1].command.timeout = registry::milliseconds(86'400'000);
    auto back = decode_command_sequence(encode_command_sequence(seq));
    REQUIRE(back);
    REQUIRE(back->size() == 2);
    CHECK(same((*back)[0].command, seq[0].command));
    CHECK((*back)[0].then_only_if_silent);
    CHECK(same((*back)[1].command, seq[1].command));
    CHECK_FALSE((*back)[1].then_only_if_silent);

    auto none = decode_command_sequence(encode_command_sequence({}));
    REQUIRE(none);
    CHECK(none->empty());
}

TEST_CASE("target wire: a command's result round-trips: negative exit code, timed out, control characters and UTF-8") {
    command_result r;
    r.exit_code = -1;
    r.timed_out = true;
    r.stdout_text = "nul\0byte \x01\x1f\x7f \"quoted\" back\\slash\r\n漢字 🚀 é"s;
    r.stderr_text = "";
    auto back = decode_command_result(encode_command_result(r));
    REQUIRE(back);
    CHECK(back->exit_code == -1);
    CHECK(back->timed_out);
    CHECK(back->stdout_text == r.stdout_text);
    CHECK(back->stderr_text.empty());

    r.exit_code = -2147483647 - 1;
    r.timed_out = false;
    back = decode_command_result(encode_command_result(r));
    REQUIRE(back);
    CHECK(back->exit_code == r.exit_code);
    CHECK_FALSE(back->timed_out);
}

TEST_CASE("target wire: output that is not UTF-8 is sent as UTF-8, its tail within the bound") {
    command_result r;
    r.exit_code = 0;
    r.stdout_text = "ok \xff\xfe end";
    auto back = decode_command_result(encode_command_result(r));
    REQUIRE(back);
    CHECK(back->stdout_text == "ok \xEF\xBF\xBD\xEF\xBF\xBD end");

    // Every byte invalid: three bytes each once made UTF-8; the tail is kept.
    r.stdout_text = std::string(target_wire_limits::max_output_bytes, '\xff') + "the end";
    back = decode_command_result(encode_command_result(r));
    REQUIRE(back);
    CHECK(back->stdout_text.size() <= target_wire_limits::max_output_bytes);
    CHECK(back->stdout_text.size() > target_wire_limits::max_output_bytes - 3);
    CHECK(back->stdout_text.ends_with("\xEF\xBF\xBDthe end"));
}

TEST_CASE("target wire: an error round-trips, and an unknown code is internal with its message kept") {
    auto back = decode_target_error(encode_target_error({errc::unavailable, "host \"b\" unreachable"}));
    REQUIRE(back);
    CHECK(back->code == errc::unavailable);
    CHECK(back->message == "host \"b\" unreachable");

    back = decode_target_error(R"({"code":"something_new","message":"from a newer registryd"})");
    REQUIRE(back);
    CHECK(back->code == errc::internal);
    CHECK(back->message == "from a newer registryd");

    back = decode_target_error(R"({"code":"busy"})");
    REQUIRE(back);
    CHECK(back->code == errc::busy);
    CHECK(back->message.empty());

    CHECK(problem(decode_target_error, R"({"message":"x"})") == "code: is required");
    CHECK(problem(decode_target_error, R"({"code":7})") == "code: must be a string");
    CHECK(problem(decode_target_error, R"([])") == "must be an object");
    CHECK(problem(decode_target_error, "not json") == "not valid JSON");
    CHECK(problem(decode_target_error, R"({"code":"busy","message":")" +
                                           std::string(target_wire_limits::max_message_bytes + 1, 'm') + "\"}") ==
          "message: must be at most 65536 bytes");
}

TEST_CASE("target wire: a sequence's answer mixes results and errors") {
    command_result ok;
    ok.exit_code = 0;
    ok.stdout_text = "fine\n";
    command_result failed;
    failed.exit_code = 2;
    failed.stderr_text = "no such file\n";
    std::vector<registry::result<command_result>> results{ok, failed,
                                                          registry::fail(errc::unavailable, "ssh: connection lost")};
    auto back = decode_sequence_results(encode_sequence_results(results));
    REQUIRE(back);
    REQUIRE(back->size() == 3);
    REQUIRE((*back)[0]);
    CHECK((*back)[0]->stdout_text == "fine\n");
    REQUIRE((*back)[1]);
    CHECK((*back)[1]->exit_code == 2);
    CHECK((*back)[1]->stderr_text == "no such file\n");
    REQUIRE_FALSE((*back)[2]);
    CHECK((*back)[2].err().code == errc::unavailable);
    CHECK((*back)[2].err().message == "ssh: connection lost");

    CHECK(problem(decode_sequence_results, R"({"results":[{"exit_code":0}]})") == "results[0].timed_out: is required");
    CHECK(problem(decode_sequence_results, R"({"results":[1]})") == "results[0]: must be an object");
    CHECK(problem(decode_sequence_results, R"({"results":[{"code":false}]})") == "results[0].code: must be a string");
    CHECK(problem(decode_sequence_results, R"({})") == "results: is required");
    std::string many = R"({"results":[)";
    for (int i = 0; i < 65; ++i) many += std::string(i ? "," : "") + result_json("");
    many += "]}";
    CHECK(problem(decode_sequence_results, many) == "results: must have at most 64 results");
}

TEST_CASE("target wire: every bound is refused, naming the field") {
    namespace lim = target_wire_limits;
    const auto seq = [](const std::string& command) { return R"({"commands":[)" + command + "]}"; };
    const std::string ok = command_json(R"(,"then_only_if_silent":false)");

    // script
    std::string script(lim::max_script_bytes, 's');
    CHECK(problem(decode_target_command, R"({"script":")" + script + R"(","env":{},"timeout_ms":1,"package_script":false})") == "");
    script += 's';
    CHECK(problem(decode_target_command, R"({"script":")" + script + R"(","env":{},"timeout_ms":1,"package_script":false})") ==
          "script: must be at most 262144 bytes");
    CHECK(problem(decode_command_sequence, seq(ok + R"(,{"script":")" + script +
                                               R"(","env":{},"timeout_ms":1,"package_script":false,"then_only_if_silent":true})")) ==
          "commands[1].script: must be at most 262144 bytes");

    // timeout_ms
    CHECK(problem(decode_command_sequence, seq(ok + "," + ok + "," + ok + "," +
                                               R"({"script":"","env":{},"timeout_ms":0,"package_script":false,"then_only_if_silent":true})")) ==
          "commands[3].timeout_ms: must be 1-86400000");
    CHECK(problem(decode_target_command, R"({"script":"","env":{},"timeout_ms":86400001,"package_script":false})") ==
          "timeout_ms: must be 1-86400000");
    CHECK(problem(decode_target_command, R"({"script":"","env":{},"timeout_ms":86400000,"package_script":false})") == "");
    CHECK(problem(decode_target_command, R"({"script":"","env":{},"timeout_ms":-5,"package_script":false})") ==
          "timeout_ms: must be 1-86400000");

    // env: entries, a name, a value
    std::string env = "{";
    for (std::size_t i = 0; i < lim::max_env_entries; ++i) env += (i ? ",\"K" : "\"K") + std::to_string(i) + "\":\"v\"";
    CHECK(problem(decode_target_command, R"({"script":"","env":)" + env + R"(},"timeout_ms":1,"package_script":false})") == "");
    env += R"(,"ONE_MORE":"v"})";
    CHECK(problem(decode_target_command, R"({"script":"","env":)" + env + R"(,"timeout_ms":1,"package_script":false})") ==
          "env: must have at most 256 entries");
    const std::string long_name(lim::max_env_key_bytes + 1, 'K');
    CHECK(problem(decode_command_sequence, seq(R"({"script":"","timeout_ms":1,"package_script":false,"then_only_if_silent":false,"env":{")" +
                                               long_name + R"(":"v"}})")) ==
          "commands[0].env: a name must be at most 256 bytes");
    const std::string long_value(lim::max_env_value_bytes + 1, 'v');
    CHECK(problem(decode_target_command, R"({"script":"","env":{"BIG":")" + long_value + R"("},"timeout_ms":1,"package_script":false})") ==
          "env.BIG: must be at most 65536 bytes");
    CHECK(problem(decode_target_command, R"({"script":"","env":{"A=B":"v"},"timeout_ms":1,"package_script":false})") ==
          "env.A=B: a name must be non-empty, without '=' or a NUL byte");
    CHECK(problem(decode_target_command, R"({"script":"a\u0000b","env":{},"timeout_ms":1,"package_script":false})") ==
          "script: must not contain a NUL byte");

    // commands
    std::string many;
    for (std::size_t i = 0; i <= lim::max_commands; ++i) many += (i ? "," : "") + ok;
    CHECK(problem(decode_command_sequence, seq(many)) == "commands: must have at most 64 commands");

    // stdout, stderr
    const std::string big_out(lim::max_output_bytes + 1, 'o');
    CHECK(problem(decode_command_result, R"({"exit_code":0,"timed_out":false,"stdout":")" + big_out + R"(","stderr":""})") ==
          "stdout: must be at most 1048576 bytes");
    CHECK(problem(decode_sequence_results, R"({"results":[)" + result_json("") + R"(,{"exit_code":0,"timed_out":false,"stdout":"","stderr":")" +
                                               big_out + R"("}]})") == "results[1].stderr: must be at most 1048576 bytes");
}

TEST_CASE("target wire: wrong types, missing and duplicate fields are refused, unknown fields skipped") {
    CHECK(problem(decode_target_command, R"({"script":1,"env":{},"timeout_ms":1,"package_script":false})") ==
          "script: must be a string");
    CHECK(problem(decode_target_command, R"({"script":"","env":[],"timeout_ms":1,"package_script":false})") ==
          "env: must be an object");
    CHECK(problem(decode_target_command, R"({"script":"","env":{"A":1},"timeout_ms":1,"package_script":false})") ==
          "env.A: must be a string");
    CHECK(problem(decode_target_command, R"({"script":"","env":{},"timeout_ms":"1","package_script":false})") ==
          "timeout_ms: must be 1-86400000");
    CHECK(problem(decode_target_command, R"({"script":"","env":{},"timeout_ms":1,"package_script":"yes"})") ==
          "package_script: must be a boolean");
    CHECK(problem(decode_target_command, R"({"script":"","env":{},"timeout_ms":1})") == "package_script: is required");
    CHECK(problem(decode_target_command, R"({"script":"","script":"","env":{},"timeout_ms":1,"package_script":false})") ==
          "script: duplicate field");
    CHECK(problem(decode_target_command, R"("script")") == "must be an object");
    CHECK(problem(decode_command_sequence, R"({"commands":{}})") == "commands: must be an array");
    CHECK(problem(decode_command_sequence, R"({"commands":[)" + command_json("") + "]}") ==
          "commands[0].then_only_if_silent: is required");
    CHECK(problem(decode_command_sequence, R"({"commands":[)" + command_json(R"(,"then_only_if_silent":1)") + "]}") ==
          "commands[0].then_only_if_silent: must be a boolean");
    CHECK(problem(decode_command_result, result_json("").replace(13, 1, "\"0\"")) == "exit_code: must be a 32-bit integer");
    CHECK(problem(decode_command_result, R"({"exit_code":4294967296,"timed_out":false,"stdout":"","stderr":""})") ==
          "exit_code: must be a 32-bit integer");
    CHECK(problem(decode_command_result, R"({"exit_code":0,"timed_out":0,"stdout":"","stderr":""})") ==
          "timed_out: must be a boolean");
    CHECK(problem(decode_command_result, R"({"exit_code":0,"timed_out":false,"stdout":null,"stderr":""})") ==
          "stdout: must be a string");

    auto c = decode_target_command(command_json(R"(,"future":{"nested":[1,2]},"then_only_if_silent":"not read here")"));
    REQUIRE(c);
    CHECK(c->script == "true");
    auto s = decode_command_sequence(R"({"version":2,"commands":[)" + command_json(R"(,"then_only_if_silent":true,"x":null)") + "]}");
    REQUIRE(s);
    REQUIRE(s->size() == 1);
    CHECK(s->front().then_only_if_silent);
    auto r = decode_command_result(result_json(R"(,"duration_ms":12)"));
    REQUIRE(r);
    CHECK(r->exit_code == 0);
    auto e = decode_target_error(R"({"code":"conflict","message":"m","fields":[]})");
    REQUIRE(e);
    CHECK(e->code == errc::conflict);
}
