// Webhook notifications against the real registryd and a real HTTP receiver
// on loopback (webhook_receiver): signed events in revision order, a slow
// receiver (timeouts, retries), a failing one (500s into a dead letter an
// admin sees and sends again), one down for a while then back (nothing
// lost, in order), and registryd killed -9 with events in its outbox
// (delivered after the restart).
#include "harness.hpp"
#include "harness_tls.hpp"
#include "webhook_receiver.hpp"

#include <doctest/doctest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fstream>
#include <iterator>
#include <set>
#include <thread>
#include <string>

using it::num;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;

namespace {

std::string hmac_hex(const std::string& key, const std::string& body) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(body.data()),
         body.size(), mac, &len);
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    for (unsigned i = 0; i < len; ++i) {
        hex.push_back(digits[mac[i] >> 4]);
        hex.push_back(digits[mac[i] & 15]);
    }
    return hex;
}

std::string config(const it::webhook_receiver& r, const std::string& hook_extra = {}, const std::string& extra = {}) {
    return "notifications:\n"
           "  initial_backoff_ms: 50\n"
           "  max_backoff_ms: 200\n" +
           extra +
           "  webhooks:\n"
           "    - name: ops\n"
           "      url: " + r.url() + "\n"
           "      secret: s3cret\n" +
           hook_extra;
}

// The registry's revisions, as the receiver first got them (a retry of one
// already received is not repeated).
std::vector<std::int64_t> first_revisions(const std::vector<it::received_post>& posts) {
    std::vector<std::int64_t> out;
    std::set<std::string> seen;
    for (const auto& p : posts) {
        if (seen.insert(p.header("idempotency-key")).second) out.push_back(std::stoll(p.header("x-registry-revision")));
    }
    return out;
}

std::size_t distinct_keys(const std::vector<it::received_post>& posts) {
    std::set<std::string> keys;
    for (const auto& p : posts) keys.insert(p.header("idempotency-key"));
    return keys.size();
}

// The value of a /metrics sample line that starts with `series` (-1 if none).
std::int64_t metric(const it::registryd& d, const std::string& series) {
    const auto m = it::http_get(d.host(), d.port(), "/metrics");
    const auto at = m.body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stoll(m.body.substr(at + series.size() + 2));
}

const it::ms wait = it::scaled(20s);

// Polls `pred` until it holds; false after `timeout`.
template <typename Pred>
bool eventually(Pred pred, it::ms timeout) {
    const auto until = it::steady::now() + timeout;
    while (!pred()) {
        if (it::steady::now() > until) return false;
        std::this_thread::sleep_for(50ms);
    }
    return true;
}

}  // namespace

TEST_CASE("notifications: each change is POSTed to the webhook, signed with its secret, in revision order") {
    it::webhook_receiver r;
    it::registryd d(config(r));
    IT_DIAGNOSE(d);
    it::ws_client c(d);
    c.call("register", it::registration(it::service("api", "api-1"), 300));
    c.call("register", it::registration(it::service("db", "db-1"), 300));
    c.call("deregister", json::object{{"instance_id", "api-1"}});
    REQUIRE(r.wait_until([](const auto& p) { return p.size() >= 3; }, wait));
    const auto posts = r.posts();
    REQUIRE(posts.size() == 3);
    const char* types[] = {"service_registered", "service_registered", "service_deregistered"};
    for (std::size_t i = 0; i < posts.size(); ++i) {
        const auto& p = posts[i];
        INFO("post ", i, ": ", p.body);
        CHECK(p.method == "POST");
        CHECK(p.target == "/hook");
        CHECK(p.header("content-type") == "application/json");
        CHECK(p.header("x-registry-signature") == "sha256=" + hmac_hex("s3cret", p.body));
        CHECK(p.header("x-registry-webhook") == "ops");
        CHECK(p.header("x-registry-event") == types[i]);
        CHECK(p.header("x-registry-revision") == std::to_string(i + 1));
        CHECK(p.header("idempotency-key") == "ops/" + std::to_string(i + 1) + ".0");
        const json::value body = it::parse(p.body);
        CHECK(str(body, "/webhook") == "ops");
        CHECK(str(body, "/event") == types[i]);
        CHECK(num(body, "/revision") == static_cast<std::int64_t>(i + 1));
    }
    CHECK(str(it::parse(posts[0].body), "/data/service/instance_id") == "api-1");
    CHECK(str(it::parse(posts[2].body), "/data/reason") == "deregistered");
    REQUIRE(eventually([&] { return metric(d, R"(registryd_notifications_total{webhook="ops",result="delivered"})") == 3; }, wait));
    CHECK(metric(d, R"(registryd_notification_outbox{webhook="ops"})") == 0);
}

TEST_CASE("notifications: a webhook's filter takes only its events and services") {
    it::webhook_receiver r;
    it::registryd d(config(r, "      events: [service_registered]\n      services: [\"web-*\"]\n"));
    IT_DIAGNOSE(d);
    it::ws_client c(d);
    c.call("register", it::registration(it::service("db", "db-1"), 300));
    c.call("register", it::registration(it::service("web-front", "web-1"), 300));
    c.call("deregister", json::object{{"instance_id", "web-1"}});
    c.call("register", it::registration(it::service("web-back", "web-2"), 300));
    REQUIRE(r.wait_until([](const auto& p) { return p.size() >= 2; }, wait));
    const auto posts = r.posts();
    REQUIRE(posts.size() == 2);
    CHECK(str(it::parse(posts[0].body), "/data/service/instance_id") == "web-1");
    CHECK(str(it::parse(posts[1].body), "/data/service/instance_id") == "web-2");
    CHECK(posts[1].header("x-registry-revision") == "4");
}

TEST_CASE("notifications: a slow receiver times out and gets the event again, with the same idempotency key") {
    it::webhook_receiver r;
    r.delay(1500ms);  // beyond the webhook's timeout
    it::registryd d(config(r, "      timeout_ms: 300\n      max_attempts: 100\n"));
    IT_DIAGNOSE(d);
    it::ws_client c(d);
    c.call("register", it::registration(it::service("api", "api-1"), 300));
    REQUIRE(r.wait_until([](const auto& p) { return p.size() >= 2; }, wait));
    r.delay(0ms);
    c.call("register", it::registration(it::service("api", "api-2"), 300));
    REQUIRE(eventually([&] { return metric(d, R"(registryd_notifications_total{webhook="ops",result="delivered"})") == 2; }, wait));
    const auto posts = r.posts();
    CHECK(posts.front().header("idempotency-key") == "ops/1.0");
    CHECK(posts[1].header("idempotency-key") == "ops/1.0");
    CHECK(std::stoi(posts[1].header("x-registry-attempt")) >= 2);
    CHECK(first_revisions(posts) == std::vector<std::int64_t>{1, 2});
    CHECK(metric(d, R"(registryd_notifications_total{webhook="ops",result="retried"})") >= 1);
    CHECK(metric(d, R"(registryd_notifications_total{webhook="ops",result="dropped"})") == 0);
}

TEST_CASE("notifications: a failing receiver's event becomes a dead letter an admin lists and sends again") {
    it::webhook_receiver r;
    r.answer(500);
    it::registryd d(config(r, "      max_attempts: 3\n"));
    IT_DIAGNOSE(d);
    it::ws_client c(d);
    c.call("register", it::registration(it::service("api", "api-1"), 300));
    REQUIRE(eventually([&] {
        return num(c.call("notification_dead_letters"), "/total") == 1;
    }, wait));
    CHECK(r.posts().size() == 3);
    const json::value list = c.call("notification_dead_letters", json::object{{"webhook", "ops"}});
    const json::value& dead = it::arr(list, "/dead_letters").at(0);
    CHECK(str(dead, "/webhook") == "ops");
    CHECK(str(dead, "/id") == "1.0");
    CHECK(num(dead, "/revision") == 1);
    CHECK(str(dead, "/event") == "service_registered");
    CHECK(str(dead, "/reason") == "max_attempts");
    CHECK(num(dead, "/attempts") == 3);
    CHECK(str(dead, "/last_error") == "HTTP 500");
    CHECK(str(it::parse(str(dead, "/body")), "/data/service/instance_id") == "api-1");
    CHECK(metric(d, R"(registryd_notifications_total{webhook="ops",result="dropped"})") == 1);
    CHECK(metric(d, R"(registryd_notifications_total{webhook="ops",result="retried"})") == 2);
    CHECK(metric(d, R"(registryd_notification_dead_letters{webhook="ops"})") == 1);

    CHECK(it::error_code(c.request("notification_dead_letters_retry", json::object{{"webhook", "nope"}})) == "not_found");
    CHECK(it::error_code(c.request("notification_dead_letters_retry",
                                   json::object{{"webhook", "ops"}, {"ids", json::array{"9.0"}}})) == "not_found");
    CHECK(it::error_code(c.request("notification_dead_letters", json::object{{"limit", 0}})) == "invalid_request");

    r.answer(200);
    CHECK(num(c.call("notification_dead_letters_retry", json::object{{"webhook", "ops"}}), "/retried") == 1);
    REQUIRE(r.wait_until([](const auto& p) { return p.size() >= 4; }, wait));
    CHECK(r.posts()[3].header("idempotency-key") == "ops/1.0");
    REQUIRE(eventually([&] { return num(c.call("notification_dead_letters"), "/total") == 0; }, wait));
    CHECK(eventually([&] { return metric(d, R"(registryd_notifications_total{webhook="ops",result="delivered"})") == 1; }, wait));
}

TEST_CASE("notifications: a receiver down for a while gets every event once it is back, in order") {
    it::webhook_receiver r;
    r.stop();
    it::registryd d(config(r, "      max_attempts: 1000\n"));
    IT_DIAGNOSE(d);
    it::ws_client c(d);
    for (int i = 0; i < 5; ++i) c.call("register", it::registration(it::service("api", "api-" + std::to_string(i)), 300));
    REQUIRE(eventually([&] { return metric(d, R"(registryd_notifications_total{webhook="ops",result="retried"})") >= 3; }, wait));
    CHECK(metric(d, R"(registryd_notification_outbox{webhook="ops"})") == 5);
    r.start();
    REQUIRE(r.wait_until([](const auto& p) { return distinct_keys(p) >= 5; }, wait));
    CHECK(first_revisions(r.posts()) == std::vector<std::int64_t>{1, 2, 3, 4, 5});
    CHECK(r.posts().size() == 5);  // one connection refused is no POST received
    CHECK(eventually([&] { return metric(d, R"(registryd_notification_outbox{webhook="ops"})") == 0; }, wait));
}

TEST_CASE("notifications: registryd killed -9 with events in its outbox delivers them after the restart") {
    it::webhook_receiver r;
    r.stop();
    it::registryd d(config(r, "      max_attempts: 1000\n"));
    IT_DIAGNOSE(d);
    {
        it::ws_client c(d);
        for (int i = 0; i < 3; ++i) c.call("register", it::registration(it::service("api", "api-" + std::to_string(i)), 300));
        // Three failed attempts of the first event (50 + 100 ms of backoff
        // between them): the outbox records of all three, written as each was
        // published, are durable by then (docs/protocol.md, "Notifications":
        // the window between an event and its outbox record).
        REQUIRE(eventually([&] { return metric(d, R"(registryd_notifications_total{webhook="ops",result="retried"})") >= 3; }, wait));
    }
    d.kill9();
    r.start();
    d.start();
    REQUIRE(r.wait_until([](const auto& p) { return distinct_keys(p) >= 3; }, wait));
    CHECK(first_revisions(r.posts()) == std::vector<std::int64_t>{1, 2, 3});
    it::ws_client c(d);
    c.call("register", it::registration(it::service("api", "api-after"), 300));
    REQUIRE(r.wait_until([](const auto& p) { return distinct_keys(p) >= 4; }, wait));
    CHECK(first_revisions(r.posts()) == std::vector<std::int64_t>{1, 2, 3, 4});
    CHECK(eventually([&] { return metric(d, R"(registryd_notification_outbox{webhook="ops"})") == 0; }, wait));
}

TEST_CASE("notifications: a broken webhook is refused at start, naming its key") {
    it::registryd d("notifications:\n  - name: Bad Name\n    url: http://127.0.0.1:1/\n", false);
    REQUIRE_THROWS_AS(d.start(3s), it::failure);
    CHECK(d.diagnostics().find("notifications[0].name") != std::string::npos);
    it::registryd e("notifications:\n  - name: ok\n    url: ftp://127.0.0.1/\n", false);
    REQUIRE_THROWS_AS(e.start(3s), it::failure);
    CHECK(e.diagnostics().find("notifications[0].url: must start with http:// or https://") != std::string::npos);
}

TEST_CASE("notifications: with access control, only an admin sees or changes the dead letters") {
    it::webhook_receiver r;
    r.answer(500);
    const std::string reader_token = "it-token-notify-reader-7c1e", admin_token = "it-token-notify-admin-7c1e";
    it::registryd d("auth:\n  tokens_file: \"{dir}/tokens.yaml\"\n" + config(r, "      max_attempts: 1\n"), false);
    d.write_file("tokens.yaml", "tokens:\n  - name: watcher\n    sha256: " + it::sha256_hex(reader_token) +
                                    "\n    role: registrar\n  - name: root\n    sha256: " + it::sha256_hex(admin_token) +
                                    "\n    role: admin\n");
    d.start();
    IT_DIAGNOSE(d);
    auto as = [](const std::string& token) {
        it::client_options o;
        o.headers = {{"Authorization", "Bearer " + token}};
        return o;
    };
    it::ws_client reader(d, as(reader_token));
    it::ws_client admin(d, as(admin_token));
    reader.call("register", it::registration(it::service("api", "api-1"), 300));
    REQUIRE(eventually([&] { return num(admin.call("notification_dead_letters"), "/total") == 1; }, wait));
    for (const char* action : {"notification_dead_letters", "notification_dead_letters_retry", "notification_dead_letters_clear"}) {
        const json::value refused = reader.request(action, json::object{{"webhook", "ops"}});
        CHECK_MESSAGE(it::error_code(refused) == "forbidden", action);
        CHECK(it::error_message(refused).find("admin") != std::string::npos);
    }
    CHECK(num(admin.call("notification_dead_letters_clear", json::object{{"webhook", "ops"}}), "/cleared") == 1);
    CHECK(num(admin.call("notification_dead_letters"), "/total") == 0);
}

TEST_CASE("notifications: an https receiver gets the events when its certificate chains to ca_file, none otherwise") {
    it::test_pki pki;
    const auto cert = pki.server("receiver");
    it::webhook_receiver r(cert.cert, cert.key);
    {
        it::registryd d(config(r, {}, "  ca_file: " + pki.ca_cert().string() + "\n"));
        IT_DIAGNOSE(d);
        it::ws_client c(d);
        c.call("register", it::registration(it::service("api", "api-1"), 300));
        REQUIRE(r.wait_until([](const auto& p) { return !p.empty(); }, wait));
        const auto p = r.posts().front();
        CHECK(p.header("host") == "localhost:" + std::to_string(r.port()));
        CHECK(p.header("x-registry-signature") == "sha256=" + hmac_hex("s3cret", p.body));
        CHECK(str(it::parse(p.body), "/data/service/instance_id") == "api-1");
        CHECK(eventually([&] { return metric(d, R"(registryd_notifications_total{webhook="ops",result="delivered"})") == 1; }, wait));
    }
    // Without ca_file (the system's CAs), the private CA's certificate is refused: nothing is sent.
    it::registryd d(config(r, "      max_attempts: 2\n"));
    IT_DIAGNOSE(d);
    it::ws_client c(d);
    c.call("register", it::registration(it::service("api", "api-2"), 300));
    REQUIRE(eventually([&] { return num(c.call("notification_dead_letters"), "/total") == 1; }, wait));
    const json::value dead = it::arr(c.call("notification_dead_letters"), "/dead_letters").at(0);
    INFO(it::dump(dead));
    CHECK(str(dead, "/last_error").find("TLS handshake failed") != std::string::npos);
    CHECK(str(dead, "/last_error").find("certificate verify failed") != std::string::npos);
    CHECK(r.posts().size() == 1);  // only the first daemon's
}

TEST_CASE("notifications: a lease that ran out while registryd was down is notified after the restart") {
    it::webhook_receiver r;
    it::registryd d(config(r, "      events: [lease_expired, service_deregistered]\n"));
    IT_DIAGNOSE(d);
    {
        it::ws_client c(d);
        c.call("register", it::registration(it::service("api", "api-1"), 1));
    }
    REQUIRE(d.terminate().clean());
    std::this_thread::sleep_for(1500ms);  // the lease's ttl passes while registryd is down
    d.start();
    REQUIRE(r.wait_until([](const auto& p) { return p.size() >= 2; }, wait));
    const auto posts = r.posts();
    CHECK(posts[0].header("x-registry-event") == "lease_expired");
    CHECK(posts[1].header("x-registry-event") == "service_deregistered");
    CHECK(posts[0].header("x-registry-revision") == posts[1].header("x-registry-revision"));
    CHECK(posts[0].header("idempotency-key") != posts[1].header("idempotency-key"));
    CHECK(str(it::parse(posts[1].body), "/data/service/instance_id") == "api-1");
}

TEST_CASE("notifications: an identity makes its own webhook by action and gets only events of its services") {
    it::webhook_receiver r;
    const std::string web_token = "it-token-notify-web-41d2", admin_token = "it-token-notify-root-41d2";
    it::registryd d("auth:\n  tokens_file: \"{dir}/tokens.yaml\"\n"
                    "audit:\n  file: \"{dir}/audit.log\"\n"
                    "notifications:\n"
                    "  identity_webhooks:\n"
                    "    allowed_urls: [\"http://127.0.0.1:*\"]\n"
                    "    max_per_identity: 1\n",
                    false);
    d.write_file("tokens.yaml", "tokens:\n  - name: web-team\n    sha256: " + it::sha256_hex(web_token) +
                                    "\n    role: registrar\n    services: [\"web-*\"]\n  - name: root\n    sha256: " +
                                    it::sha256_hex(admin_token) + "\n    role: admin\n");
    d.start();
    IT_DIAGNOSE(d);
    auto as = [](const std::string& token) {
        it::client_options o;
        o.headers = {{"Authorization", "Bearer " + token}};
        return o;
    };
    it::ws_client web(d, as(web_token));
    it::ws_client admin(d, as(admin_token));

    CHECK(it::error_code(web.request("webhook_create", json::object{{"name", "mine"}, {"url", "http://10.1.2.3/"},
                                                                    {"services", json::array{"web-*"}}})) == "forbidden");
    CHECK(it::error_code(web.request("webhook_create", json::object{{"name", "mine"}, {"url", r.url()},
                                                                    {"services", json::array{"*"}}})) == "forbidden");
    CHECK(it::error_code(web.request("webhook_create", json::object{{"name", "mine"}, {"url", "http://127.0.0.1:0/"},
                                                                    {"services", json::array{"web-*"}}})) == "invalid_request");
    const json::value made = web.call("webhook_create", json::object{{"name", "web-hook"}, {"url", r.url()},
                                                                     {"services", json::array{"web-*"}},
                                                                     {"secret", "t0p"}, {"events", json::array{"service_registered"}}});
    CHECK(str(made, "/webhook/owner") == "web-team");
    CHECK(it::boolean(made, "/webhook/signed"));
    CHECK(!it::has(made, "/webhook/secret"));
    CHECK(it::error_code(web.request("webhook_create", json::object{{"name", "second"}, {"url", r.url()},
                                                                    {"services", json::array{"web-*"}}})) == "limit_exceeded");

    admin.call("register", it::registration(it::service("db", "db-1"), 300));
    web.call("register", it::registration(it::service("web-front", "web-1"), 300));
    REQUIRE(r.wait_until([](const auto& p) { return !p.empty(); }, wait));
    CHECK(r.posts().size() == 1);
    const auto p = r.posts().front();
    CHECK(p.header("x-registry-webhook") == "web-hook");
    CHECK(p.header("x-registry-signature") == "sha256=" + hmac_hex("t0p", p.body));
    CHECK(str(it::parse(p.body), "/data/service/instance_id") == "web-1");

    CHECK(it::arr(web.call("webhook_list"), "/webhooks").size() == 1);
    CHECK(it::arr(admin.call("webhook_list"), "/webhooks").size() == 1);
    // Kept across a restart.
    REQUIRE(d.terminate().clean());
    d.start();
    it::ws_client again(d, as(web_token));
    CHECK(str(it::arr(again.call("webhook_list"), "/webhooks").at(0), "/name") == "web-hook");
    again.call("webhook_delete", json::object{{"name", "web-hook"}});
    CHECK(it::arr(again.call("webhook_list"), "/webhooks").empty());
    CHECK(it::error_code(again.request("webhook_delete", json::object{{"name", "web-hook"}})) == "not_found");
    // Both changes are in the audit log, with who made them.
    CHECK(eventually([&] {
        std::ifstream in(d.dir() / "audit.log");
        const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return log.find(R"("identity":"web-team","source")") != std::string::npos &&
               log.find(R"("action":"webhook_create","target":"web-hook","request_id")") != std::string::npos &&
               log.find(R"("action":"webhook_delete","target":"web-hook","request_id")") != std::string::npos;
    }, wait));
    again.call("register", it::registration(it::service("web-front", "web-2"), 300));
    r.wait_until([](const auto& posts) { return posts.size() > 1; }, it::scaled(1s));
    CHECK(r.posts().size() == 1);  // deleted: nothing more
}
