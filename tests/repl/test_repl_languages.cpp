// The shipped languages beyond sh, python and node, on real Podman with the
// images tests/containers/build-images.sh builds from this host's Debian
// packages: go (golang-go 1.19) and the two versions of c and cpp, gcc 12
// (the default) and clang 14, each with a hello world and a compile error;
// a version named in the request runs that version's toolchain, an unknown
// one is refused naming the configured versions.
#include "repl_harness.hpp"

#include <string>

namespace {

using namespace repl_it;
using it::num;
using it::str;

json::object program(const char* language, const std::string& code, const char* version = nullptr) {
    json::object p{{"language", language}, {"code", code}};
    if (version) p["version"] = version;
    return p;
}

}  // namespace

TEST_CASE("repl: go compiles and runs (warm), a compile error does not run") {
    repl_daemon rd{repl_daemon::shipped{}};
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    const execution hello = run_one(ws, program("go", "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\n"
                                                      "func main() {\n\tfmt.Println(\"hello go\", len(os.Args))\n}\n"),
                                    120s);
    INFO(it::dump(hello.finished));
    CHECK(str(hello.finished, "/data/version") == "1.19");
    CHECK(num(hello.finished, "/data/compile/exit_code") == 0);
    CHECK(num(hello.finished, "/data/exit_code") == 0);
    CHECK(str(hello.finished, "/data/stdout") == "hello go 1\n");

    const execution bad = run_one(ws, program("go", "package main\n\nfunc main() {\n\tundefined_thing()\n}\n"), 120s);
    INFO(it::dump(bad.finished));
    CHECK(num(bad.finished, "/data/compile/exit_code") != 0);
    CHECK(str(bad.finished, "/data/compile/stderr").find("undefined: undefined_thing") != std::string::npos);
    CHECK(is_null(bad.finished, "/data/exit_code"));
    CHECK(bad.output.empty());
}

TEST_CASE("repl: c and cpp by gcc 12 (default) and clang 14, chosen by version, an unknown version is refused") {
    repl_daemon rd{repl_daemon::shipped{}};
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    const json::value langs = ws.call("repl_languages");
    INFO(it::dump(langs));
    std::vector<std::string> c_versions;
    for (const auto& l : it::arr(langs, "/languages")) {
        if (str(l, "/name") != "c") continue;
        c_versions.push_back(str(l, "/version") + (it::boolean(l, "/default") ? " (default)" : ""));
    }
    CHECK(c_versions == std::vector<std::string>{"gcc 12 (default)", "clang 14"});

    // __VERSION__ is the compiler's own: "12.2.0" from gcc, "Debian Clang 14.0.6" from clang.
    const std::string c_code = "#include <stdio.h>\nint main(void) { printf(\"hello c %s\\n\", __VERSION__); }\n";
    const std::string cpp_code = "#include <iostream>\n#include <vector>\nint main() {\n  std::vector v{1, 2, 3};\n"
                                 "  std::cout << \"hello cpp \" << v.size() << ' ' << __VERSION__ << std::endl;\n}\n";
    for (const char* language : {"c", "cpp"}) {
        INFO(language);
        const std::string& code = std::string(language) == "c" ? c_code : cpp_code;
        const execution by_default = run_one(ws, program(language, code), 120s);
        const execution gcc = run_one(ws, program(language, code, "gcc 12"), 120s);
        const execution clang = run_one(ws, program(language, code, "clang 14"), 120s);
        INFO(it::dump(by_default.finished));
        INFO(it::dump(clang.finished));
        CHECK(str(by_default.finished, "/data/version") == "gcc 12");
        CHECK(str(gcc.finished, "/data/version") == "gcc 12");
        CHECK(str(clang.finished, "/data/version") == "clang 14");
        for (const execution* run : {&by_default, &gcc, &clang}) {
            CHECK(num(run->finished, "/data/compile/exit_code") == 0);
            CHECK(num(run->finished, "/data/exit_code") == 0);
            CHECK(str(run->finished, "/data/stdout").starts_with(std::string("hello ") + language));
        }
        CHECK(str(by_default.finished, "/data/stdout").find(" 12.2.0") != std::string::npos);
        CHECK(str(gcc.finished, "/data/stdout") == str(by_default.finished, "/data/stdout"));
        CHECK(str(clang.finished, "/data/stdout").find("Clang 14.0.6") != std::string::npos);

        const execution bad = run_one(ws, program(language, "int main() { puts(\"never\") return 0; }\n", "clang 14"),
                                      120s);
        INFO(it::dump(bad.finished));
        CHECK(num(bad.finished, "/data/compile/exit_code") != 0);
        CHECK(str(bad.finished, "/data/compile/stderr").find("error:") != std::string::npos);
        CHECK(is_null(bad.finished, "/data/exit_code"));
        CHECK(bad.output.empty());
    }

    const json::value unknown = ws.request("repl_execute", program("c", "int main(void) { return 0; }\n", "tcc"));
    CHECK(it::error_code(unknown) == "invalid_request");
    CHECK(it::error_message(unknown) ==
          "params.version: unknown version 'tcc' of language 'c' (configured: 'gcc 12', 'clang 14')");
}
