#include <registry/deploy/package_manifest.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace registry::deploy;

namespace {

bool contains(const std::vector<std::string>& problems, std::string_view p) {
    return std::find(problems.begin(), problems.end(), p) != problems.end();
}

}  // namespace

TEST_CASE("package manifest: the seed's example is valid") {
    auto m = parse_package_manifest(R"(
name: api-server
version: 1.2.3
description: REST API server
service:
  type: managed_process
  ports:
    - name: http
      port: 8080
      protocol: tcp
depends_on: [postgres, redis]
requires:
  commands: [/usr/bin/curl]
  libraries: [libpq.so.5]
health:
  script: scripts/health.sh
  interval: 30s
  timeout: 5s
)");
    REQUIRE(m.ok());
    CHECK(m->name == "api-server");
    CHECK(m->version == "1.2.3");
    CHECK(m->description == "REST API server");
    REQUIRE(m->ports.size() == 1);
    CHECK(m->ports[0].name == "http");
    CHECK(m->ports[0].port == 8080);
    CHECK(m->ports[0].protocol == "tcp");
    CHECK(m->depends_on == std::vector<std::string>{"postgres", "redis"});
    CHECK(m->required_commands == std::vector<std::string>{"/usr/bin/curl"});
    CHECK(m->required_libraries == std::vector<std::string>{"libpq.so.5"});
    REQUIRE(m->health.has_value());
    CHECK(m->health->script == "scripts/health.sh");
    CHECK(m->health->interval == registry::milliseconds(30000));
    CHECK(m->health->timeout == registry::milliseconds(5000));
    CHECK(install_dir_name(*m) == "api-server-1.2.3");
}

TEST_CASE("package manifest: every problem is reported with its field path") {
    const auto problems = check_package_manifest(R"(
name: "bad name!"
description: 12
service:
  type: docker
  ports:
    - name: http
      port: 8080
    - name: http
      port: 70000
    - port: x
      protocol: sctp
      colour: blue
depends_on: "postgres"
requires:
  commands: [""]
  libraries: [/usr/lib/libpq.so.5]
health:
  interval: soon
  timeout: 0s
extra: 1
)");
    INFO(::doctest::toString(problems.size()));
    for (const auto& p : problems) INFO(p);
    CHECK(contains(problems, "name: must be 1-128 characters of [A-Za-z0-9._-]"));
    CHECK(contains(problems, "version: is required"));
    CHECK(contains(problems, "extra: unknown field"));
    CHECK(contains(problems, "service.type: a package that runs an image is of type container (with a container: section naming the image)"));
    CHECK(contains(problems, "service.ports[1].name: duplicate port name 'http'"));
    CHECK(contains(problems, "service.ports[1].port: must be 1-65535"));
    CHECK(contains(problems, "service.ports[2].name: is required"));
    CHECK(contains(problems, "service.ports[2].port: must be 1-65535"));
    CHECK(contains(problems, "service.ports[2].protocol: must be one of tcp, udp, http, https, grpc"));
    CHECK(contains(problems, "service.ports[2].colour: unknown field"));
    CHECK(contains(problems, "depends_on: must be a list"));
    CHECK(contains(problems, "requires.commands[0]: must be a non-empty string without control characters"));
    CHECK(contains(problems, "requires.libraries[0]: must be a library file name, like libpq.so.5"));
    CHECK(contains(problems, "health.script: is required"));
    CHECK(contains(problems, "health.interval: must be a duration between 1ms and 24h, like 30s, 500ms or 2m"));
    CHECK(contains(problems, "health.timeout: must be a duration between 1ms and 24h, like 30s, 500ms or 2m"));
    CHECK(problems.size() == 16);

    auto r = parse_package_manifest("name: x\nversion: 1\nservice: {ports: [{name: a, port: 0}]}\n");
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == registry::errc::invalid_package);
    CHECK(r.err().message == "manifest.yaml: service.ports[0].port: must be 1-65535");
}

TEST_CASE("package manifest: paths, versions, YAML syntax") {
    CHECK(contains(check_package_manifest("name: a\nversion: ../1\nservice: {}\n"),
                   "version: must be 1-64 characters of [A-Za-z0-9._+-] starting with a letter or digit"));
    CHECK(contains(check_package_manifest("name: a\nversion: 1\nservice: {}\nhealth: {script: ../h.sh}\n"),
                   "health.script: must be a relative path inside the package"));
    CHECK(contains(check_package_manifest("name: a\nversion: 1\nservice: {}\nhealth: {script: /bin/true}\n"),
                   "health.script: must be a relative path inside the package"));
    CHECK(contains(check_package_manifest("name: a\nversion: 1\n"), "service: is required"));
    const auto syntax = check_package_manifest("name: [unclosed\n");
    REQUIRE(syntax.size() == 1);
    CHECK(syntax[0].rfind("manifest: is not valid YAML (line ", 0) == 0);
    CHECK(check_package_manifest("") == std::vector<std::string>{"manifest: is empty"});
    CHECK(check_package_manifest("- a\n") == std::vector<std::string>{"manifest: must be a mapping"});
}

TEST_CASE("package manifest: durations and name sanitization") {
    CHECK(parse_duration("30s") == registry::milliseconds(30000));
    CHECK(parse_duration("500ms") == registry::milliseconds(500));
    CHECK(parse_duration("2m") == registry::milliseconds(120000));
    CHECK(parse_duration("1h") == registry::milliseconds(3600000));
    CHECK(parse_duration("7") == registry::milliseconds(7000));
    CHECK_FALSE(parse_duration("").has_value());
    CHECK_FALSE(parse_duration("s").has_value());
    CHECK_FALSE(parse_duration("3 days").has_value());
    CHECK(sanitize_package_name("api.server v2/x") == "api_server_v2_x");
    CHECK(sanitize_package_name("ok_name-1") == "ok_name-1");
}
