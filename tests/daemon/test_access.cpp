// registryd's access pieces without I/O: what a request presents, the
// Origin rule, the failed-attempt window, the tokens file's checks, the
// role table, the gate's answers and the refusal bodies.
#include "access/credentials.hpp"
#include "access/failed_attempts.hpp"
#include "access/gate.hpp"
#include "access/role_table.hpp"
#include "access/tokens_file.hpp"
#include "config/config.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace registryd;
using registry::protocol::permission_family;

namespace {

std::string entry(std::string_view name, std::string_view role, std::string_view token) {
    return "  - name: " + std::string(name) + "\n    sha256: " + access::hex(access::sha256_of(token)) +
           "\n    role: " + std::string(role) + "\n";
}

std::string error_of(std::string_view yaml, const access::role_table& roles = access::role_table{}) {
    try {
        access::parse_tokens(yaml, "tokens.yaml", roles);
    } catch (const config_error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("access: the token comes from Authorization: Bearer, else access_token in the query") {
    CHECK(access::presented_token("Bearer abc", "/") == "abc");
    CHECK(access::presented_token("bearer   abc  ", "/") == "abc");
    CHECK(access::presented_token("Basic abc", "/?x=1&access_token=q%2Dr") == "q-r");
    CHECK(access::presented_token("Bearer header", "/?access_token=query") == "header");
    CHECK_FALSE(access::presented_token("", "/?access_token=").has_value());
    CHECK_FALSE(access::presented_token("", "/?access_token=%zz").has_value());
    CHECK_FALSE(access::presented_token("Bearer ", "/").has_value());
    CHECK_FALSE(access::presented_token("", "/?my_access_token=x").has_value());
}

TEST_CASE("access: Origin: none passes, the own origin by default, the allow-list otherwise") {
    http_config h;
    CHECK(access::origin_allowed(h, std::nullopt, "127.0.0.1:8080"));
    CHECK(access::origin_allowed(h, "http://127.0.0.1:8080", "127.0.0.1:8080"));
    CHECK(access::origin_allowed(h, "HTTPS://Registry.Example", "registry.example"));
    CHECK_FALSE(access::origin_allowed(h, "https://evil.example", "127.0.0.1:8080"));
    CHECK_FALSE(access::origin_allowed(h, "http://127.0.0.1:8081", "127.0.0.1:8080"));
    CHECK_FALSE(access::origin_allowed(h, "null", "127.0.0.1:8080"));
    CHECK_FALSE(access::origin_allowed(h, "http://", ""));
    h.allowed_origins = {"https://console.example"};
    CHECK(access::origin_allowed(h, "https://console.example", "127.0.0.1:8080"));
    CHECK_FALSE(access::origin_allowed(h, "http://127.0.0.1:8080", "127.0.0.1:8080"));
    h.allowed_origins = {"*"};
    CHECK(access::origin_allowed(h, "https://evil.example", "x"));
}

TEST_CASE("access: failed attempts: blocked at the maximum until the window from the first ends, bounded") {
    using namespace std::chrono_literals;
    access::failed_attempts f(3, 60s, 2);
    const auto a = boost::asio::ip::make_address("10.0.0.1");
    const access::failed_attempts::clock::time_point t0{};
    f.record(a, t0);
    f.record(a, t0 + 10s);
    CHECK_FALSE(f.blocked(a, t0 + 10s));
    f.record(a, t0 + 20s);
    REQUIRE(f.blocked(a, t0 + 20s));
    CHECK(*f.blocked(a, t0 + 20s) == 40s);
    CHECK(*f.blocked(a, t0 + 59500ms) == 1s);  // rounded up
    CHECK_FALSE(f.blocked(a, t0 + 60s));
    f.record(a, t0 + 61s);  // a new window
    CHECK_FALSE(f.blocked(a, t0 + 61s));
    f.record(boost::asio::ip::make_address("10.0.0.2"), t0 + 62s);
    f.record(boost::asio::ip::make_address("10.0.0.3"), t0 + 63s);
    CHECK(f.tracked() == 2);
}

TEST_CASE("access: the tokens file is checked entry by entry, naming the entry and key") {
    CHECK(error_of("tokens:\n" + entry("ci", "deployer", "t1")).empty());
    CHECK(error_of("tokens:\n  - name: ci\n    role: reader\n").find("tokens[0]: needs sha256") != std::string::npos);
    CHECK(error_of("tokens:\n  - name: ci\n    sha256: abc\n    role: reader\n").find("tokens[0].sha256") !=
          std::string::npos);
    CHECK(error_of("tokens:\n" + entry("ci", "root", "t1")).find("unknown role 'root'") != std::string::npos);
    CHECK(error_of("tokens:\n" + entry("a", "reader", "t1") + entry("b", "reader", "t1"))
              .find("tokens[1].sha256: the same digest") != std::string::npos);
    CHECK(error_of("tokens:\n  - name: ci\n    subject: CN=x\n    role: reader\n    extra: 1\n")
              .find("tokens[0].extra: unknown key") != std::string::npos);
    CHECK(error_of("token: []\n").find("token: unknown key") != std::string::npos);

    const auto parsed = access::parse_tokens(
        "tokens:\n" + entry("ci", "registrar", "t1") + "    services: [\"web-*\"]\n", "tokens.yaml", access::role_table{});
    REQUIRE(parsed.size() == 1);
    CHECK(parsed[0].caller->who.name == "ci");
    CHECK(parsed[0].caller->who.services == std::vector<std::string>{"web-*"});
    CHECK_FALSE(parsed[0].caller->who.admin);
    CHECK(parsed[0].caller->permissions.allows(permission_family::register_));
    CHECK_FALSE(parsed[0].caller->permissions.allows(permission_family::repl));
}

TEST_CASE("access: the role table: each built-in role holds the one before it, custom roles by family names") {
    const access::role_table t;
    const auto roles = access::builtin_roles();
    for (std::size_t i = 1; i < roles.size(); ++i) {
        for (std::size_t f = 0; f < registry::protocol::permission_family_count; ++f) {
            const auto family = static_cast<permission_family>(f);
            if (roles[i - 1].permissions.allows(family)) CHECK(roles[i].permissions.allows(family));
        }
        // Each adds something: a family, or (admin) acting on what others own.
        CHECK((!(roles[i - 1].permissions == roles[i].permissions) || roles[i - 1].admin != roles[i].admin));
    }
    CHECK(t.find("admin")->admin);
    CHECK(t.find("admin")->permissions == registry::protocol::permission_set::all());
    CHECK_FALSE(t.find("deployer")->admin);

    const access::role_table custom(
        std::map<std::string, std::vector<std::string>, std::less<>>{{"dashboard", {"discover", "containers.read"}}});
    REQUIRE(custom.find("dashboard"));
    CHECK(custom.find("dashboard")->permissions ==
          registry::protocol::permission_set{permission_family::discover, permission_family::containers_read});
    using custom_roles = std::map<std::string, std::vector<std::string>, std::less<>>;
    CHECK_THROWS_WITH_AS(access::role_table(custom_roles{{"x", {"root"}}}),
                         doctest::Contains("auth.roles.x: unknown permission family 'root'"), config_error);
    CHECK_THROWS_WITH_AS(access::role_table(custom_roles{{"admin", {}}}),
                         doctest::Contains("auth.roles.admin: a built-in role"), config_error);
}

TEST_CASE("access: the gate: anonymous without auth, with it, 401 then 429 per source, the body is JSON") {
    config off;
    access::gate open(off);
    CHECK_FALSE(open.enabled());
    access::credentials c;
    c.source = boost::asio::ip::make_address("127.0.0.1");
    c.host = "127.0.0.1:1";
    auto anon = open.admit(c, {});
    REQUIRE(std::holds_alternative<access::gate::caller>(anon));
    CHECK(std::get<access::gate::caller>(anon)->who.name == "anonymous");
    c.origin = "https://evil.example";
    CHECK(std::get<access::refusal>(open.admit(c, {})).status == 403);

    const access::refusal r{429, "rate_limited", "say \"no\"\n", std::chrono::seconds(2)};
    CHECK(r.body() == "{\"code\":\"rate_limited\",\"message\":\"say \\\"no\\\"\\u000a\",\"retry_after_ms\":2000}\n");
}

TEST_CASE("access: the config's safe defaults: loopback only without auth, tokens_file required, metrics token needs auth") {
    auto error_for = [](std::string_view yaml, std::string host = "127.0.0.1") -> std::string {
        config cfg;
        try {
            apply_yaml(cfg, yaml, "test.yaml");
            cfg.listen.host = std::move(host);
            validate(cfg);
        } catch (const config_error& e) {
            return e.what();
        }
        return "";
    };
    CHECK(error_for("").empty());
    CHECK(error_for("", "0.0.0.0").find("without an `auth` section registryd listens on loopback only") !=
          std::string::npos);
    CHECK(error_for("", "::").find("`auth: {disabled: true}`") != std::string::npos);
    CHECK(error_for("", "::1").empty());
    CHECK(error_for("", "127.1.2.3").empty());
    CHECK(error_for("auth: {disabled: true}\n", "0.0.0.0").empty());
    CHECK(error_for("auth: {tokens_file: /t.yaml}\n", "0.0.0.0").empty());
    CHECK(error_for("auth: {}\n").find("auth.tokens_file: is required") != std::string::npos);
    CHECK(error_for("auth: {tokens_file: /t.yaml, bogus: 1}\n").find("auth.bogus: unknown key") != std::string::npos);
    CHECK(error_for("http: {metrics_token_required: true}\n").find("http.metrics_token_required") != std::string::npos);
    CHECK(error_for("http: {allowed_origins: [\"https://a.example\"]}\n").empty());
}
