// Access control on the real daemon (docs/protocol.md, "Authentication and
// authorization"): tokens at the upgrade (401), failed attempts (429), the
// Origin allow-list (403), /metrics and /v1/services, roles and `forbidden`
// (the permission matrix over every action and built-in role), SIGHUP
// reloads of the tokens file, the loopback-only default, `registryd token
// new` and `registryd roles`.

#include "harness.hpp"
#include "harness_tls.hpp"

#include <doctest/doctest.h>


#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

using namespace it;

namespace {

const std::vector<std::string> builtin_roles{"reader", "registrar", "runner", "operator", "deployer", "admin"};

std::string token_of(std::string_view who) { return "it-token-" + std::string(who) + "-5f3a9c"; }

std::string entry(std::string_view name, std::string_view role, std::string_view token) {
    return "  - name: " + std::string(name) + "\n    sha256: " + sha256_hex(token) + "\n    role: " +
           std::string(role) + "\n";
}

// One token per built-in role, the identity named after the role.
std::string role_tokens(const std::string& more = {}) {
    std::string out = "tokens:\n";
    for (const auto& r : builtin_roles) out += entry(r, r, token_of(r));
    return out + more;
}

const std::string auth_section = "auth:\n  tokens_file: \"{dir}/tokens.yaml\"\n";

// A registryd with auth on (harness: the tokens file in its dir).
std::unique_ptr<registryd> auth_daemon(const std::string& extra = {}, const std::string& tokens = role_tokens()) {
    auto d = std::make_unique<registryd>(auth_section + extra, false);
    d->write_file("tokens.yaml", tokens);
    d->start();
    return d;
}

header_list bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

client_options as(const std::string& token) {
    client_options o;
    o.headers = bearer(token);
    return o;
}

struct command_result {
    int status = -1;
    std::string out;  // stdout
    std::string err;  // stderr
};

// Runs registryd with `args` (already shell-quoted), from `dir`.
command_result run_registryd(const std::string& args, const std::filesystem::path& dir) {
    const auto err_file = dir / "command.stderr";
    const std::string cmd = "cd '" + dir.string() + "' && '" + std::string(REGISTRYD_PATH) + "' " + args + " 2>'" +
                            err_file.string() + "'";
    command_result r;
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
    const int status = ::pclose(p);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream in(err_file);
    std::ostringstream s;
    s << in.rdbuf();
    r.err = s.str();
    return r;
}

json::object register_params(std::string_view name, std::string_view instance_id) {
    json::object endpoint;
    endpoint["name"] = "http";
    endpoint["address"] = "127.0.0.1";
    endpoint["port"] = 8080;
    endpoint["protocol"] = "http";
    json::object svc = service(name, instance_id);
    json::array endpoints;
    endpoints.push_back(std::move(endpoint));
    svc["endpoints"] = std::move(endpoints);
    return registration(std::move(svc), 30);
}

// Polls `ok` until it holds (SIGHUP is handled asynchronously).
template <typename Pred>
bool eventually(Pred ok, ms timeout = scaled(5000ms)) {
    const auto deadline = steady::now() + timeout;
    while (steady::now() < deadline) {
        if (ok()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return ok();
}

}  // namespace

TEST_CASE("auth: the upgrade needs a valid token: 401 with WWW-Authenticate: Bearer, else the connection opens") {
    auto d = auth_daemon();
    IT_DIAGNOSE(*d);

    const auto none = upgrade_request(d->host(), d->port(), "/");
    CHECK(none.status == 401);
    CHECK(none.www_authenticate == "Bearer");
    CHECK(none.content_type == "application/json");
    CHECK(str(parse(none.body), "/code") == "unauthenticated");

    const auto wrong = upgrade_request(d->host(), d->port(), "/", bearer("not-a-token"));
    CHECK(wrong.status == 401);
    CHECK(wrong.www_authenticate == "Bearer");
    CHECK(str(parse(wrong.body), "/message") == "the token is not valid");
    // The token is never logged.
    CHECK(d->diagnostics().find("not-a-token") == std::string::npos);

    const auto wrong_query = upgrade_request(d->host(), d->port(), "/?access_token=not-a-token");
    CHECK(wrong_query.status == 401);

    // The header...
    const auto header = upgrade_request(d->host(), d->port(), "/", bearer(token_of("reader")));
    CHECK(header.status == 101);
    ws_client by_header(*d, as(token_of("reader")));
    CHECK(error_code(by_header.request("get_service", {{"name", "web"}})) == "not_found");

    // ... or the query parameter (browsers cannot set headers).
    client_options q;
    q.target = "/?access_token=" + token_of("registrar");
    ws_client by_query(*d, q);
    by_query.call("register", register_params("web", "web-1"));
    CHECK(arr(by_header.call("get_service", {{"name", "web"}}), "/services").size() == 1);
}

TEST_CASE("auth: failed attempts from one address are limited: 429 with Retry-After, valid tokens included") {
    auto d = auth_daemon("  max_failed_attempts: 3\n  failed_attempt_window_seconds: 60\n");
    IT_DIAGNOSE(*d);
    for (int i = 0; i < 3; ++i) CHECK(upgrade_request(d->host(), d->port(), "/", bearer("guess")).status == 401);
    const auto limited = upgrade_request(d->host(), d->port(), "/", bearer(token_of("admin")));
    CHECK(limited.status == 429);
    const int retry_after = std::atoi(limited.retry_after.c_str());
    CHECK(retry_after > 0);
    CHECK(retry_after <= 60);
    CHECK(str(parse(limited.body), "/code") == "rate_limited");
    CHECK(num(parse(limited.body), "/retry_after_ms") == retry_after * 1000);
    CHECK(http_get(d->host(), d->port(), "/v1/services", default_timeout, bearer(token_of("admin"))).status == 429);
    CHECK(http_get(d->host(), d->port(), "/healthz").status == 200);  // stays open
}

TEST_CASE("auth: a reader may discover but registering is forbidden, naming the permission, the connection stays open") {
    auto d = auth_daemon();
    IT_DIAGNOSE(*d);
    ws_client reader(*d, as(token_of("reader")));
    const auto refused = reader.request("register", register_params("web", "web-1"));
    CHECK(error_code(refused) == "forbidden");
    CHECK(error_message(refused) == "'reader' lacks the permission 'register' that register needs");
    CHECK_FALSE(reader.is_closed());
    CHECK(arr(reader.call("list_services"), "/services").empty());
}

TEST_CASE("auth: Origin: only registryd's own origin by default, the allow-list otherwise (403)") {
    SUBCASE("without auth, loopback is no protection from a web page") {
        registryd d;
        IT_DIAGNOSE(d);
        const std::string own = "http://" + d.host() + ":" + std::to_string(d.port());
        const auto evil = upgrade_request(d.host(), d.port(), "/", {{"Origin", "https://evil.example"}});
        CHECK(evil.status == 403);
        CHECK(str(parse(evil.body), "/code") == "forbidden");
        CHECK(upgrade_request(d.host(), d.port(), "/", {{"Origin", own}}).status == 101);
        CHECK(upgrade_request(d.host(), d.port(), "/").status == 101);  // no Origin: not a browser
        CHECK(http_get(d.host(), d.port(), "/v1/services", default_timeout, {{"Origin", "https://evil.example"}}).status ==
              403);
    }
    SUBCASE("http.allowed_origins") {
        auto d = auth_daemon("http:\n  allowed_origins: [\"https://console.example\"]\n");
        IT_DIAGNOSE(*d);
        header_list h = bearer(token_of("reader"));
        h.emplace_back("Origin", "https://console.example");
        CHECK(upgrade_request(d->host(), d->port(), "/", h).status == 101);
        h.back().second = "https://evil.example";
        CHECK(upgrade_request(d->host(), d->port(), "/", h).status == 403);
    }
}

TEST_CASE("auth: /healthz stays open, /metrics wants a token of any role, /v1/services the discover family") {
    auto d = auth_daemon("  roles:\n    scraper: []\nhttp:\n  metrics_token_required: true\n",
                         role_tokens(entry("prometheus", "scraper", token_of("scraper"))));
    IT_DIAGNOSE(*d);
    CHECK(http_get(d->host(), d->port(), "/healthz").status == 200);

    const auto metrics = http_get(d->host(), d->port(), "/metrics");
    CHECK(metrics.status == 401);
    CHECK(metrics.www_authenticate == "Bearer");
    CHECK(http_get(d->host(), d->port(), "/metrics", default_timeout, bearer(token_of("scraper"))).status == 200);

    CHECK(http_get(d->host(), d->port(), "/v1/services").status == 401);
    const auto no_discover =
        http_get(d->host(), d->port(), "/v1/services", default_timeout, bearer(token_of("scraper")));
    CHECK(no_discover.status == 403);
    CHECK(str(parse(no_discover.body), "/message") ==
          "'prometheus' lacks the permission 'discover' that GET /v1/services needs");
    CHECK(http_get(d->host(), d->port(), "/v1/services/web", default_timeout, bearer(token_of("reader"))).status == 404);
    CHECK(http_get(d->host(), d->port(), "/v1/services?access_token=" + token_of("reader")).status == 200);
    // A scraper may not open a WebSocket and discover either.
    ws_client scraper(*d, as(token_of("scraper")));
    CHECK(error_code(scraper.request("list_services")) == "forbidden");

    // Without the option, /metrics is open even with auth on.
    auto open = auth_daemon();
    CHECK(http_get(open->host(), open->port(), "/metrics").status == 200);
}

TEST_CASE("auth: SIGHUP re-reads the tokens file: a new token connects, a removed one no longer does") {
    auto d = auth_daemon();
    IT_DIAGNOSE(*d);
    ws_client before(*d, as(token_of("reader")));

    d->write_file("tokens.yaml", "tokens:\n" + entry("newcomer", "reader", token_of("newcomer")));
    d->signal(SIGHUP);
    CHECK(eventually([&] { return upgrade_request(d->host(), d->port(), "/", bearer(token_of("newcomer"))).status == 101; }));
    CHECK(upgrade_request(d->host(), d->port(), "/", bearer(token_of("reader"))).status == 401);
    CHECK(d->running());

    // An invalid file (here: writable by others) keeps the tokens loaded before.
    d->write_file("tokens.yaml", role_tokens(), 0666);
    d->signal(SIGHUP);
    CHECK(eventually([&] { return d->diagnostics().find("reload failed") != std::string::npos; }));
    CHECK(d->diagnostics().find("chmod go-w") != std::string::npos);
    CHECK(upgrade_request(d->host(), d->port(), "/", bearer(token_of("reader"))).status == 401);
    CHECK(upgrade_request(d->host(), d->port(), "/", bearer(token_of("newcomer"))).status == 101);
    CHECK(d->running());
}

TEST_CASE("auth: without an auth section registryd refuses a non-loopback address (exit 2), auth.disabled allows it") {
    SUBCASE("refused, naming the auth section") {
        registryd d({}, false);
        d.set_listen("0.0.0.0:0");
        CHECK_THROWS_AS(d.start(), failure);
        REQUIRE(d.last_exit());
        CHECK(d.last_exit()->code == 2);
        CHECK(d.diagnostics().find("without an `auth` section registryd listens on loopback only") != std::string::npos);
    }
    SUBCASE("auth: {disabled: true}") {
        registryd d("auth: {disabled: true}\n", false);
        d.set_listen("0.0.0.0:0");
        d.start();
        IT_DIAGNOSE(d);
        ws_client c("127.0.0.1", d.port());
        c.call("register", register_params("web", "web-1"));  // anonymous: everything
        CHECK(d.diagnostics().find("listening beyond loopback without authentication") != std::string::npos);
    }
    SUBCASE("with tokens but without TLS: a warning") {
        registryd d(auth_section, false);
        d.write_file("tokens.yaml", role_tokens());
        d.set_listen("0.0.0.0:0");
        d.start();
        IT_DIAGNOSE(d);
        CHECK(d.diagnostics().find("listening beyond loopback without TLS") != std::string::npos);
        CHECK(upgrade_request("127.0.0.1", d.port(), "/").status == 401);
    }
    SUBCASE("a tokens file others may write: exit 2") {
        registryd d(auth_section, false);
        d.write_file("tokens.yaml", role_tokens(), 0620);
        CHECK_THROWS_AS(d.start(), failure);
        REQUIRE(d.last_exit());
        CHECK(d.last_exit()->code == 2);
        CHECK(d.diagnostics().find("may be written by group or others") != std::string::npos);
    }
}

TEST_CASE("auth: registryd token new prints a token that the entry it prints admits") {
    temp_dir dir("registryd-it-token");
    const auto printed = run_registryd("token new --name ci-web --role registrar --services 'web-*'", dir.path());
    REQUIRE(printed.status == 0);
    const std::string token = printed.out.substr(0, printed.out.find('\n'));
    CHECK(token.size() >= 22);  // >= 128 bits of base64
    CHECK(token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos);
    const auto at = printed.err.find("  - name:");
    REQUIRE(at != std::string::npos);
    CHECK(printed.err.find(token) == std::string::npos);  // only its digest
    CHECK(run_registryd("token new --name x --role root", dir.path()).status == 2);
    const auto second = run_registryd("token new --name ci-web --role registrar", dir.path());
    CHECK(second.out.substr(0, second.out.find('\n')) != token);

    auto d = auth_daemon({}, "tokens:\n" + printed.err.substr(at));
    IT_DIAGNOSE(*d);
    ws_client c(*d, as(token));
    c.call("register", register_params("web-frontend", "web-frontend-1"));
    // The printed entry carries the scope: a service outside web-* is refused.
    CHECK(error_code(c.request("register", register_params("web", "web-1"))) == "forbidden");
    CHECK(error_code(c.request("repl_execute", {{"language", "python"}, {"code", "1"}})) == "forbidden");

    // --tokens-file appends the entry; SIGHUP loads it.
    const auto appended =
        run_registryd("token new --name ops --role operator --tokens-file '" + (d->dir() / "tokens.yaml").string() + "'",
                      dir.path());
    REQUIRE(appended.status == 0);
    const std::string ops = appended.out.substr(0, appended.out.find('\n'));
    d->signal(SIGHUP);
    CHECK(eventually([&] { return upgrade_request(d->host(), d->port(), "/", bearer(ops)).status == 101; }));
    CHECK(upgrade_request(d->host(), d->port(), "/", bearer(token)).status == 101);
}

TEST_CASE("auth: docs/protocol.md carries the role table registryd roles --markdown prints") {
    temp_dir dir("registryd-it-roles");
    const auto table = run_registryd("roles --markdown", dir.path());
    REQUIRE(table.status == 0);
    REQUIRE(!table.out.empty());
    std::ifstream in(std::string(REGISTRY_DOCS_DIR) + "/protocol.md");
    std::ostringstream docs;
    docs << in.rdbuf();
    CHECK_MESSAGE(docs.str().find(table.out) != std::string::npos,
                  "docs/protocol.md's role table differs from `registryd roles --markdown`:\n" << table.out);
}

TEST_CASE("auth: the permission matrix: every action for every built-in role is allowed or forbidden as the role table says") {
    // Each action's family: the protocol's contract (registry/protocol/permission.hpp).
    const std::map<std::string, std::string> family_of{
        {"get_service", "discover"},           {"list_services", "discover"},
        {"list_endpoints", "discover"},        {"subscribe", "discover"},
        {"unsubscribe", "discover"},           {"register", "register"},
        {"keepalive", "register"},             {"deregister", "register"},
        {"set_state", "register"},             {"container_list", "containers.read"},
        {"container_get", "containers.read"},  {"container_logs", "containers.read"},
        {"list_nodes", "containers.read"},     {"container_create", "containers.write"},
        {"container_stop", "containers.write"}, {"container_remove", "containers.write"},
        {"container_extend", "containers.write"}, {"image_pull", "containers.write"},
        {"container_cancel_queued", "containers.write"},
        {"repl_languages", "repl.read"},       {"repl_execute", "repl"},
        {"repl_cancel", "repl"},               {"repl_result", "repl.read"},
        {"repl_history", "repl.read"},         {"deploy_package", "deploy"},
        {"service_action", "deploy"},          {"undeploy", "deploy"},
        {"package_upload_begin", "deploy"},    {"package_upload_chunk", "deploy"},
        {"package_upload_status", "deploy"},
    };
    // The roles as the binary's table has them: "name: family family ... [(admin)]".
    temp_dir dir("registryd-it-matrix");
    const auto listed = run_registryd("roles", dir.path());
    REQUIRE(listed.status == 0);
    std::map<std::string, std::set<std::string>> families_of;
    std::istringstream lines(listed.out);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream words(line);
        std::string name;
        words >> name;
        name.pop_back();  // the ':'
        for (std::string w; words >> w;) families_of[name].insert(w);
    }
    for (const auto& r : builtin_roles) REQUIRE_MESSAGE(families_of.count(r) == 1, r);
    CHECK(families_of["admin"].count("(admin)") == 1);

    auto d = auth_daemon();
    IT_DIAGNOSE(*d);
    std::size_t forbidden = 0, allowed = 0;
    for (const auto& role : builtin_roles) {
        ws_client c(*d, as(token_of(role)));
        for (const auto& [action, family] : family_of) {
            const auto response = c.request(action);  // params absent: past the check, invalid_request at most
            const std::string code = error_code(response);
            INFO(role << " × " << action << " → " << dump(response));
            CHECK(code != "unknown_action");
            if (families_of[role].count(family)) {
                CHECK(code != "forbidden");
                ++allowed;
            } else {
                CHECK(code == "forbidden");
                CHECK(error_message(response) ==
                      "'" + role + "' lacks the permission '" + family + "' that " + action + " needs");
                ++forbidden;
            }
        }
        CHECK_FALSE(c.is_closed());
    }
    CHECK(allowed + forbidden == builtin_roles.size() * family_of.size());
    CHECK(forbidden > 0);
    CHECK(allowed > 0);
}

TEST_CASE("auth: what one identity holds another may not touch or see, an admin may, the audit log has the refusals") {
    auto d = auth_daemon("deploy:\n  prefix: \"{dir}/opt\"\naudit:\n  file: \"{dir}/audit.log\"\n",
                         role_tokens(entry("deployer2", "deployer", token_of("deployer2"))));
    IT_DIAGNOSE(*d);
    ws_client holder(*d, as(token_of("registrar")));
    ws_client other(*d, as(token_of("deployer")));
    ws_client admin(*d, as(token_of("admin")));

    // A lease: its holder sees its id; another identity neither sees nor uses it.
    const json::value granted = holder.call("register", register_params("web", "web-1"));
    const std::int64_t lease = num(granted, "/lease_id");
    CHECK(num(holder.call("get_service", json::object{{"instance_id", "web-1"}}), "/service/lease/id") == lease);
    const json::value seen = other.call("get_service", json::object{{"instance_id", "web-1"}});
    CHECK_FALSE(has(seen, "/service/lease/id"));
    CHECK_FALSE(has(other.call("list_services"), "/services/0/lease/id"));
    const auto view = http_get(d->host(), d->port(), "/v1/services", default_timeout, bearer(token_of("deployer")));
    REQUIRE(view.status == 200);
    CHECK_FALSE(has(parse(view.body), "/services/0/lease/id"));
    const auto own_view = http_get(d->host(), d->port(), "/v1/services", default_timeout, bearer(token_of("registrar")));
    CHECK(num(parse(own_view.body), "/services/0/lease/id") == lease);
    CHECK(error_code(other.request("keepalive", json::object{{"lease_id", lease}})) == "forbidden");
    CHECK(error_code(other.request("deregister", json::object{{"instance_id", "web-1"}})) == "forbidden");
    json::object hijack = register_params("web", "web-1");
    hijack["lease_id"] = lease;  // re-register someone else's instance to another address
    CHECK(error_code(other.request("register", hijack)) == "forbidden");
    CHECK(num(holder.call("keepalive", json::object{{"lease_id", lease}}), "/lease_id") == lease);

    // An upload: only the identity that began it (or an admin) may go on with it or ask about it.
    const json::value upload = other.call(
        "package_upload_begin",
        json::object{{"size", 10}, {"sha256", std::string(64, 'a')}});
    const std::string upload_id = str(upload, "/upload_id");
    CHECK(upload_id.size() == 3 + 32);  // up- and 128 random bits in hex
    ws_client deployer2(*d, as(token_of("deployer2")));
    CHECK(error_code(deployer2.request("package_upload_status", json::object{{"upload_id", upload_id}})) ==
          "forbidden");
    CHECK(str(admin.call("package_upload_status", json::object{{"upload_id", upload_id}}), "/upload_id") == upload_id);

    // An admin may act on anything.
    admin.call("deregister", json::object{{"instance_id", "web-1"}});

    // A wrong token at the door, and the refusals above, are in the audit log (never a token).
    CHECK(upgrade_request(d->host(), d->port(), "/", bearer("not-a-token")).status == 401);
    holder.close();
    other.close();
    admin.close();
    deployer2.close();
    CHECK(d->terminate().clean());
    std::ifstream in(d->dir() / "audit.log");
    std::stringstream text;
    text << in.rdbuf();
    const std::string log = text.str();
    INFO(log);
    CHECK(log.find(R"("code":"unauthenticated")") != std::string::npos);
    CHECK(log.find(R"("identity":"deployer","source")") != std::string::npos);
    CHECK(log.find(R"("action":"keepalive")") != std::string::npos);
    CHECK(log.find(R"("code":"forbidden")") != std::string::npos);
    CHECK(log.find("not-a-token") == std::string::npos);
    CHECK(log.find(token_of("registrar")) == std::string::npos);
}
