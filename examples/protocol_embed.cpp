// The protocol without a transport: registryd's request/response/event
// protocol (docs/protocol.md) answered by the library for any transport an
// embedder has — here none: text frames in, the outbox's frames out. A
// transport (a WebSocket server, a pipe, a message queue) only moves these
// strings. Checks each answer (exit status 1 and a message otherwise).
#include <registry/protocol/connection.hpp>
#include <registry/protocol/frame.hpp>
#include <registry/registry.hpp>
#include <registry/sync_wait.hpp>
#include <registry/testing/fake_clock.hpp>
#include <registry/testing/memory_store.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

void expect(bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "protocol_embed: %s\n", what);
    std::exit(1);
}

// The embedder's side of a connection: where its responses and events go.
struct collecting_outbox final : registry::protocol::outbox {
    std::vector<std::string> frames;
    bool send(registry::protocol::frame f) override {
        frames.push_back(f.text());
        return true;
    }
};

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

}  // namespace

int main() {
    registry::testing::fake_clock clock;
    registry::testing::memory_store store;
    registry::registry reg(clock, store);
    expect(registry::sync_wait(reg.open()).ok(), "open failed");

    registry::protocol::server server(reg);
    collecting_outbox watcher_out, client_out;
    registry::protocol::loop_context loop;  // one per event loop; this example has one
    registry::protocol::connection watcher(server, loop, watcher_out, 1);
    registry::protocol::connection client(server, loop, client_out, 2);

    auto ask = [](registry::protocol::connection& c, std::string_view text) {
        auto done = registry::sync_wait(c.handle(text));
        return std::string(done.code);
    };
    expect(ask(watcher, R"({"id":"w1","type":"request","action":"subscribe","params":{}})") == "ok", "subscribe failed");
    expect(ask(client, R"({"id":"1","type":"request","action":"register","params":{"service":{"name":"api",)"
                       R"("endpoints":[{"name":"http","address":"127.0.0.1","port":8081,"protocol":"http"}]},"ttl_seconds":30}})") == "ok",
           "register failed");
    expect(ask(client, R"({"id":"2","type":"request","action":"list_services","params":{"name":"api"}})") == "ok",
           "list_services failed");
    expect(ask(client, R"({"id":"3","type":"request","action":"no_such_action","params":{}})") != "ok",
           "an unknown action was accepted");

    for (const auto& f : client_out.frames) std::printf("client  <- %s\n", f.c_str());
    for (const auto& f : watcher_out.frames) std::printf("watcher <- %s\n", f.c_str());
    expect(client_out.frames.size() == 3, "the client did not get three responses");
    expect(contains(client_out.frames[0], R"("id":"1","type":"response")") && contains(client_out.frames[0], R"("lease_id")"),
           "register's response has no lease");
    expect(contains(client_out.frames[1], R"("port":8081)"), "list_services does not list api:8081");
    expect(contains(client_out.frames[2], R"("code":"unknown_action")"), "an unknown action is not answered unknown_action");
    bool saw_registered = false;
    for (const auto& f : watcher_out.frames) saw_registered |= contains(f, R"("event":"service_registered")");
    expect(saw_registered, "the subscriber got no service_registered event");

    watcher.close();
    client.close();
    return 0;
}
