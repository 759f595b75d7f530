// Driving a protocol::connection in unit tests: a capturing outbox, a client
// that sends frames and collects what they caused, and request frames.
#pragma once

#include "registry_test_support.hpp"

#include <registry/protocol/connection.hpp>

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace registry::test {

struct capture final : protocol::outbox {
    std::vector<protocol::frame> frames;
    bool refuse = false;  // a full queue
    std::size_t refused = 0;

    bool send(protocol::frame f) override {
        // Whoever encoded the frame says what it is (the transport counts events by it).
        CHECK((f.kind == protocol::frame_kind::event) == f.text().starts_with(R"({"type":"event",)"));
        if (refuse) {
            ++refused;
            return false;
        }
        frames.push_back(std::move(f));
        return true;
    }

    // Every frame's text, and forgets them.
    std::vector<std::string> take() {
        std::vector<std::string> out;
        for (const auto& f : frames) out.push_back(f.text());
        frames.clear();
        return out;
    }
};

struct client {
    capture out;
    protocol::loop_context loop;  // each client as if on a loop of its own
    protocol::connection conn;

    client(protocol::server& srv, session_id id, std::string source = {},
           std::shared_ptr<const protocol::principal> caller = nullptr)
        : conn(srv, loop, out, id, std::move(source), std::move(caller)) {}

    // A request that completes without waiting; returns every frame it caused.
    std::vector<std::string> send(const std::string& frame, std::string_view code = "ok") {
        out.frames.clear();
        const protocol::outcome o = run_now(conn.handle(frame));
        CHECK(o.code == code);
        return out.take();
    }

    // ... and that causes exactly one frame, its response.
    std::string ask(const std::string& frame, std::string_view code = "ok") {
        auto frames = send(frame, code);
        REQUIRE(frames.size() == 1);
        return frames.front();
    }
};

inline std::string req(std::string_view id, std::string_view action, std::string_view params = {}) {
    std::string out = R"({"id":")" + std::string(id) + R"(","type":"request","action":")" + std::string(action) + '"';
    if (!params.empty()) out += R"(,"params":)" + std::string(params);
    return out + "}";
}

}  // namespace registry::test
