// The `repl.languages` section: one version per entry as before, or several
// under `versions`, each overriding the entry's keys, the default first.
#include "config/config.hpp"
#include "config/repl_config.hpp"

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <string>

namespace {

using registryd::config_error;
using registryd::repl_config;

repl_config read(const std::string& yaml) {
    repl_config c;
    registryd::read_repl_section(c, YAML::Load(yaml), "test.yaml");
    return c;
}

std::string refusal(const std::string& yaml) {
    try {
        read(yaml);
    } catch (const config_error& e) {
        return e.what();
    }
    return "accepted";
}

const std::string entry = "languages:\n"
                          "  - name: c\n"
                          "    source_file: main.c\n"
                          "    compile: [gcc, -o, main, \"{source}\"]\n"
                          "    run: [./main]\n"
                          "    defaults: {timeout_ms: 20000, memory_bytes: 512MiB}\n"
                          "    maximum: {timeout_ms: 60000, memory_bytes: 1GiB}\n";

}  // namespace

TEST_CASE("repl config: a single-version language as before") {
    const auto c = read("languages:\n"
                        "  - name: python\n"
                        "    version: \"3.11\"\n"
                        "    image: localhost/registry-python:latest\n"
                        "    source_file: main.py\n"
                        "    run: [python3, \"{source}\"]\n"
                        "    warm_pool: 2\n");
    REQUIRE(c.languages.size() == 1);
    CHECK(c.languages[0].name == "python");
    CHECK(c.languages[0].version == "3.11");
    CHECK(c.languages[0].warm_pool == 2);
    CHECK(c.languages[0].maximum == c.languages[0].defaults);
}

TEST_CASE("repl config: versions inherit the entry's keys and override them, the default first") {
    const auto c = read(entry +
                        "    default_version: clang 14\n"
                        "    versions:\n"
                        "      - version: gcc 12\n"
                        "        image: localhost/registry-gcc:latest\n"
                        "        warm_pool: 1\n"
                        "      - version: clang 14\n"
                        "        image: localhost/registry-clang:latest\n"
                        "        compile: [clang, -o, main, \"{source}\"]\n"
                        "        defaults: {memory_bytes: 768MiB}\n");
    REQUIRE(c.languages.size() == 2);
    const auto& clang = c.languages[0];  // the default version comes first
    const auto& gcc = c.languages[1];
    CHECK(clang.name == "c");
    CHECK(clang.version == "clang 14");
    CHECK(clang.image == "localhost/registry-clang:latest");
    CHECK(clang.compile.front() == "clang");
    CHECK(clang.defaults.memory_bytes == 768u << 20);
    CHECK(clang.defaults.timeout == std::chrono::milliseconds(20000));  // the entry's, not overridden
    CHECK(clang.maximum.memory_bytes == 1u << 30);
    CHECK(clang.warm_pool == 0);
    CHECK(gcc.version == "gcc 12");
    CHECK(gcc.image == "localhost/registry-gcc:latest");
    CHECK(gcc.compile.front() == "gcc");
    CHECK(gcc.run == std::vector<std::string>{"./main"});
    CHECK(gcc.defaults.memory_bytes == 512u << 20);
    CHECK(gcc.warm_pool == 1);

    const auto first = read(entry + "    versions:\n      - {version: a, image: x}\n      - {version: b, image: y}\n");
    CHECK(first.languages.at(0).version == "a");  // no default_version: the first listed
}

TEST_CASE("repl config: bad versions are refused with the key named") {
    CHECK(refusal(entry + "    versions:\n      - {version: a}\n") ==
          "test.yaml:9: repl.languages[0].versions[0].image: is required (here or in repl.languages[0])");
    CHECK(refusal(entry + "    versions:\n      - {image: x}\n") ==
          "test.yaml:9: repl.languages[0].versions[0].version: is required");
    CHECK(refusal(entry + "    versions:\n      - {version: \"\", image: x}\n") ==
          "test.yaml:9: repl.languages[0].versions[0].version: must not be empty");
    CHECK(refusal(entry + "    versions:\n      - {version: a, image: x}\n      - {version: a, image: y}\n") ==
          "test.yaml:10: repl.languages[0].versions[1].version: duplicate version 'a'");
    CHECK(refusal(entry + "    default_version: c\n    versions:\n      - {version: a, image: x}\n"
                          "      - {version: b, image: y}\n") ==
          "test.yaml:8: repl.languages[0].default_version: 'c' is none of repl.languages[0].versions ('a', 'b')");
    CHECK(refusal(entry + "    image: x\n    default_version: a\n") ==
          "test.yaml:9: repl.languages[0].default_version: needs repl.languages[0].versions");
    CHECK(refusal(entry + "    version: \"1\"\n    versions:\n      - {version: a, image: x}\n") ==
          "test.yaml:2: repl.languages[0].version: not with repl.languages[0].versions: each version names its own");
    CHECK(refusal(entry + "    versions: []\n") == "test.yaml:8: repl.languages[0].versions: must be a non-empty list");
    CHECK(refusal(entry + "    versions:\n      - {version: a, image: x, name: d}\n") ==
          "test.yaml:9: repl.languages[0].versions[0].name: unknown key");
    CHECK(refusal(entry + "    versions:\n      - {version: a, image: x, defaults: {memory_bytes: 2GiB}}\n") ==
          "test.yaml:9: repl.languages[0].versions[0].defaults: must not exceed repl.languages[0].versions[0].maximum");
    CHECK(refusal(entry + "    image: x\n  - name: c\n    image: y\n    source_file: a\n    run: [a]\n") ==
          "test.yaml:9: repl.languages[1].name: duplicate language 'c' (several versions of one language: its "
          "versions list)");
}
