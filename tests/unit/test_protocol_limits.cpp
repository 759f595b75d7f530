// The protocol's limits (docs/protocol.md, "Limits"): listings in pages of
// one revision, per-source and per-connection quotas, the length of every
// string of a request.
#include "protocol_test_support.hpp"
#include "registry_test_support.hpp"

#include <registry/protocol/connection.hpp>

#include <doctest/doctest.h>
#include <simdjson.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;
using testing::fake_clock;
using testing::memory_store;

namespace {

struct fixture {
    explicit fixture(protocol::limits lim, registry_options o = {}) : opt(o), reg(clk, st, opt), srv(reg, lim) {
        REQUIRE(run_now(reg.open()).ok());
    }
    ~fixture() { clients.clear(); }

    client& connect(std::string source = "192.0.2.1") {
        clients.push_back(std::make_unique<client>(srv, clients.size() + 1, std::move(source)));
        return *clients.back();
    }

    fake_clock clk;
    memory_store st;
    registry_options opt;
    registry::registry reg;
    protocol::server srv;
    std::deque<std::unique_ptr<client>> clients;
};

simdjson::dom::element at(const std::string& json, std::string_view pointer) {
    static simdjson::dom::parser parser;
    simdjson::dom::element root;
    REQUIRE_MESSAGE(parser.parse(json).get(root) == simdjson::SUCCESS, json);
    simdjson::dom::element value;
    REQUIRE_MESSAGE(root.at_pointer(pointer).get(value) == simdjson::SUCCESS, pointer, " in ", json);
    return value;
}

bool has(const std::string& json, std::string_view pointer) {
    static simdjson::dom::parser parser;
    simdjson::dom::element root;
    REQUIRE(parser.parse(json).get(root) == simdjson::SUCCESS);
    simdjson::dom::element value;
    return root.at_pointer(pointer).get(value) == simdjson::SUCCESS;
}

std::string str(const std::string& json, std::string_view pointer) {
    return std::string(at(json, pointer).get_string().value());
}
std::uint64_t num(const std::string& json, std::string_view pointer) { return at(json, pointer).get_uint64().value(); }

using strings = std::vector<std::string>;

strings ids(const std::string& response, std::string_view array = "services") {
    strings out;
    auto items = at(response, "/data/" + std::string(array)).get_array().value();
    for (auto item : items) {
        std::string_view id = item["instance_id"].get_string().value();
        out.emplace_back(id);
    }
    return out;
}

std::string reg_params(std::string_view id) {
    return R"({"service":{"name":"api","instance_id":")" + std::string(id) +
           R"(","endpoints":[{"name":"http","address":"127.0.0.1","port":80,"protocol":"http"},)"
           R"({"name":"admin","address":"127.0.0.1","port":81,"protocol":"http"}]}})";
}

std::string error_of(const std::string& response) {
    return str(response, "/error/code") + ": " + str(response, "/error/message");
}

}  // namespace

TEST_CASE("limits: a listing's pages are all of the revision of its first page") {
    protocol::limits lim;
    lim.max_page_items = 3;
    fixture f(lim);
    auto& a = f.connect();
    for (int i = 1; i <= 5; ++i) a.ask(req("r", "register", reg_params("api-" + std::to_string(i))));

    auto first = a.ask(req("1", "list_services", R"({"limit":2})"));
    CHECK(ids(first) == strings{"api-1", "api-2"});
    const std::uint64_t revision = num(first, "/data/revision");
    CHECK(num(first, "/data/remaining") == 3);
    const std::string token = str(first, "/data/continue");

    // Changes after the first page do not show in the next ones.
    a.ask(req("d", "deregister", R"({"instance_id":"api-4"})"));
    a.ask(req("r", "register", reg_params("api-0")));
    a.ask(req("r", "register", reg_params("api-9")));

    // limit above max_page_items: max_page_items.
    auto second = a.ask(req("2", "list_services", R"({"continue":")" + token + R"(","limit":100})"));
    CHECK(ids(second) == strings{"api-3", "api-4", "api-5"});
    CHECK(num(second, "/data/revision") == revision);
    CHECK_FALSE(has(second, "/data/continue"));  // the last page
    CHECK_FALSE(has(second, "/data/remaining"));

    // The same token again: the same page (a retry), until the last page was sent.
    CHECK(error_of(a.ask(req("3", "list_services", R"({"continue":")" + token + R"("})"), "continue_expired"))
              .starts_with("continue_expired: the listing at revision " + std::to_string(revision)));

    // Without a limit: max_page_items, now at the current revision.
    auto fresh = a.ask(req("4", "list_services"));
    CHECK(ids(fresh) == strings{"api-0", "api-1", "api-2"});
    CHECK(num(fresh, "/data/revision") > revision);
    // A page before the last can be asked for again (a retry): the same page.
    auto two = a.ask(req("5", "list_services", R"({"limit":2})"));
    const std::string next = R"({"continue":")" + str(two, "/data/continue") + R"(","limit":2})";
    auto retry = a.ask(req("6", "list_services", next));
    auto again = a.ask(req("6", "list_services", next));
    CHECK(ids(retry) == strings{"api-2", "api-3"});
    CHECK(retry == again);
}

TEST_CASE("limits: continue tokens are checked, and belong to their connection") {
    protocol::limits lim;
    lim.max_page_items = 1;
    lim.max_open_listings_per_connection = 1;
    fixture f(lim);
    auto& a = f.connect();
    auto& b = f.connect();
    for (int i = 1; i <= 3; ++i) a.ask(req("r", "register", reg_params("api-" + std::to_string(i))));

    CHECK(error_of(a.ask(req("1", "list_services", R"({"continue":"x"})"), "invalid_request")) ==
          "invalid_request: params.continue: not a continue token of this server");
    CHECK(error_of(a.ask(req("1", "list_services", R"({"limit":0})"), "invalid_request")) ==
          "invalid_request: params.limit: must be at least 1");
    CHECK(error_of(a.ask(req("1", "list_services", R"({"continue":"1.1.1","name":"api"})"), "invalid_request")) ==
          "invalid_request: params.name: not allowed with continue (the first page's filters apply)");

    auto first = a.ask(req("2", "list_services"));
    const std::string token = str(first, "/data/continue");
    // Another connection's token is not found.
    b.ask(req("3", "list_services", R"({"continue":")" + token + R"("})"), "continue_expired");
    // A services token is not an endpoints one.
    CHECK(error_of(a.ask(req("4", "list_endpoints", R"({"continue":")" + token + R"("})"), "invalid_request")) ==
          "invalid_request: params.continue: not a continue token of this action");
    // A connection's newer listing evicts its older one beyond max_open_listings_per_connection.
    a.ask(req("5", "list_endpoints"));
    a.ask(req("6", "list_services", R"({"continue":")" + token + R"("})"), "continue_expired");
}

TEST_CASE("limits: list_endpoints in pages") {
    protocol::limits lim;
    lim.max_page_items = 3;
    fixture f(lim);
    auto& a = f.connect();
    a.ask(req("r", "register", reg_params("api-1")));
    a.ask(req("r", "register", reg_params("api-2")));
    auto first = a.ask(req("1", "list_endpoints"));
    CHECK(ids(first, "endpoints") == strings{"api-1", "api-1", "api-2"});
    CHECK(num(first, "/data/remaining") == 1);
    auto last = a.ask(req("2", "list_endpoints", R"({"continue":")" + str(first, "/data/continue") + R"("})"));
    CHECK(ids(last, "endpoints") == strings{"api-2"});
    CHECK(str(last, "/data/endpoints/0/name") == "admin");
}

TEST_CASE("limits: get_service by name in pages, a token is its action's") {
    protocol::limits lim;
    lim.max_page_items = 2;
    fixture f(lim);
    auto& a = f.connect();
    for (int i = 1; i <= 3; ++i) a.ask(req("r", "register", reg_params("api-" + std::to_string(i))));
    auto first = a.ask(req("1", "get_service", R"({"name":"api"})"));
    CHECK(ids(first) == strings{"api-1", "api-2"});
    CHECK(num(first, "/data/remaining") == 1);
    const std::string token = str(first, "/data/continue");
    CHECK(error_of(a.ask(req("2", "list_services", R"({"continue":")" + token + R"("})"), "invalid_request")) ==
          "invalid_request: params.continue: not a continue token of this action");
    auto last = a.ask(req("3", "get_service", R"({"continue":")" + token + R"("})"));
    CHECK(ids(last) == strings{"api-3"});
    CHECK(error_of(a.ask(req("4", "get_service", R"({"instance_id":"api-1","limit":1})"), "invalid_request")) ==
          "invalid_request: params.limit: only with name");
    a.ask(req("5", "get_service", R"({"name":"nope"})"), "not_found");
}

TEST_CASE("limits: subscriptions per source address, over its connections") {
    protocol::limits lim;
    lim.max_subscriptions = 2;
    lim.max_subscriptions_per_source = 3;
    fixture f(lim);
    auto& a = f.connect("192.0.2.1");
    auto& b = f.connect("192.0.2.1");
    auto& other = f.connect("192.0.2.2");
    a.send(req("1", "subscribe"));
    a.send(req("2", "subscribe"));
    CHECK(error_of(a.ask(req("3", "subscribe"), "limit_exceeded")) ==
          "limit_exceeded: at most 2 subscriptions per connection");
    b.send(req("4", "subscribe"));
    CHECK(error_of(b.ask(req("5", "subscribe"), "limit_exceeded")) ==
          "limit_exceeded: quota subscriptions_per_address: 192.0.2.1 holds its maximum of 3 subscriptions");
    other.send(req("6", "subscribe"));  // another address has its own quota
    // Freed by unsubscribe and by the end of a connection.
    a.ask(req("7", "unsubscribe", R"({"subscription":"s1"})"));
    CHECK(b.send(req("8", "subscribe")).size() >= 1);
    b.ask(req("9", "subscribe"), "limit_exceeded");
    a.conn.close();
    auto& c = f.connect("192.0.2.1");
    CHECK(c.send(req("10", "subscribe")).size() >= 1);
}

TEST_CASE("limits: registrations per source address and per connection") {
    registry_options o;
    o.max_services_per_origin = 3;
    o.max_services_per_session = 2;
    fixture f(protocol::limits{}, o);
    auto& a = f.connect("192.0.2.1");
    auto& b = f.connect("192.0.2.1");
    auto& other = f.connect("192.0.2.2");
    const auto lease = num(a.ask(req("1", "register", reg_params("a-1"))), "/data/lease_id");
    a.ask(req("2", "register", reg_params("a-2")));
    CHECK(error_of(a.ask(req("3", "register", reg_params("a-3")), "limit_exceeded")) ==
          "limit_exceeded: quota registrations_per_connection: this connection holds its maximum of 2 registrations");
    b.ask(req("4", "register", reg_params("b-1")));
    CHECK(error_of(b.ask(req("5", "register", reg_params("b-2")), "limit_exceeded")) ==
          "limit_exceeded: quota registrations_per_address: 192.0.2.1 holds its maximum of 3 registrations");
    other.ask(req("6", "register", reg_params("c-1")));
    // Re-registering an instance under its lease is no new registration.
    std::string again = reg_params("a-1");
    again.insert(again.size() - 1, R"(,"lease_id":)" + std::to_string(lease));
    a.ask(req("7", "register", again));
    // A deregistration frees its place; a closed connection does not: its
    // instances still live and still count.
    a.ask(req("8", "deregister", R"({"instance_id":"a-1"})"));
    b.ask(req("9", "register", reg_params("b-2")));
    a.conn.close();
    b.ask(req("10", "register", reg_params("b-3")), "limit_exceeded");
}

TEST_CASE("limits: every string of a request is limited, and the error names it") {
    fixture f(protocol::limits{});
    auto& a = f.connect();
    a.ask(req("r", "register", reg_params("api-1")));
    const std::string big(4097, 'x');
    CHECK(error_of(a.ask(req("1", "set_state", R"({"instance_id":"api-1","state":"failed","reason":")" + big + R"("})"),
                         "invalid_request")) == "invalid_request: params.reason: must be at most 4096 bytes");
    a.ask(req("2", "set_state", R"({"instance_id":"api-1","state":"failed","reason":")" + big.substr(1) + R"("})"));
    CHECK(error_of(a.ask(req("3", "list_services", R"({"metadata":{"team":")" + big + R"("}})"), "invalid_request")) ==
          "invalid_request: params.metadata.team: must be at most 4096 bytes");
    CHECK(error_of(a.ask(req("4", "list_services", R"({"metadata":{")" + big + R"(":"x"}})"), "invalid_request")) ==
          "invalid_request: params.metadata: a key must be at most 4096 bytes");
    CHECK(error_of(a.ask(req("5", "deregister", R"({"instance_id":")" + big + R"("})"), "invalid_request")) ==
          "invalid_request: params.instance_id: must be at most 4096 bytes");
    CHECK(error_of(a.ask(req("6", "list_services", R"({")" + big + R"(":1})"), "invalid_request")) ==
          "invalid_request: params: unknown field (a name of 4097 bytes)");
}
