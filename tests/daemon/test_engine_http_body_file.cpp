// A request body sent from a file (engine/engine_http.hpp, http_request::body_file):
// a small HTTP server here records what it got.
#include "engine/engine_http.hpp"
#include "runtime/detached_task.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <doctest/doctest.h>

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <thread>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using asio::ip::tcp;

// One request, read with a body limit on a thread of its own, answered 200.
struct recording_server {
    asio::io_context io;
    tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
    std::string method, target, content_type, content_length, body, error;
    std::thread thread;

    recording_server() {
        thread = std::thread([this] {
            beast::error_code ec;
            tcp::socket s(io);
            acceptor.accept(s, ec);
            if (ec) {
                error = "accept: " + ec.message();
                return;
            }
            beast::flat_buffer buffer;
            http::request_parser<http::string_body> parser;
            parser.body_limit(16 * 1024 * 1024);
            http::read(s, buffer, parser, ec);
            if (ec) {
                error = "read: " + ec.message();
                return;
            }
            const auto& req = parser.get();
            method = std::string(req.method_string());
            target = std::string(req.target());
            content_type = std::string(req[http::field::content_type]);
            content_length = std::string(req[http::field::content_length]);
            body = req.body();
            http::response<http::string_body> res{http::status::created, 11};
            res.set(http::field::content_type, "text/plain");
            res.body() = "got " + std::to_string(body.size());
            res.prepare_payload();
            http::write(s, res, ec);
            s.shutdown(tcp::socket::shutdown_both, ec);
        });
    }
    ~recording_server() {
        if (thread.joinable()) thread.join();
    }
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }
};

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string pattern = (fs::temp_directory_path() / "engine_http_body_file.XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

using answer = registry::result<registryd::http_response>;

registryd::detached run_into(registry::task<answer> t, std::optional<answer>& out, std::exception_ptr& thrown) {
    try {
        out.emplace(co_await std::move(t));
    } catch (...) {
        thrown = std::current_exception();
    }
}

// The client's answer to `req`, sent to 127.0.0.1:port.
answer send(std::uint16_t port, registryd::http_request req) {
    asio::io_context io;
    auto endpoint = registryd::engine_endpoint::parse("tcp://127.0.0.1:" + std::to_string(port));
    REQUIRE(endpoint);
    registryd::engine_http_client client(io, *endpoint);
    std::optional<answer> out;
    std::exception_ptr thrown;
    run_into(client.request(std::move(req)), out, thrown);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!out && !thrown && std::chrono::steady_clock::now() < deadline) {
        if (io.stopped()) io.restart();
        io.run_for(std::chrono::milliseconds(50));
    }
    if (thrown) std::rethrow_exception(thrown);
    REQUIRE(out.has_value());
    return std::move(*out);
}

}  // namespace

TEST_CASE("engine http: a body file is sent as it is, with its size as Content-Length") {
    temp_dir tmp;
    const fs::path file = tmp.path / "package.tar.gz";
    std::string contents(5 * 1024 * 1024 + 123, '\0');
    std::mt19937 rng(7);
    for (char& c : contents) c = static_cast<char>(rng());
    std::ofstream(file, std::ios::binary) << contents;

    recording_server server;
    registryd::http_request req;
    req.method = "PUT";
    req.target = "/targets/local/upload?to=%2Fopt%2Fx";
    req.content_type = "application/gzip";
    req.body_file = file;
    auto res = send(server.port(), std::move(req));
    server.thread.join();
    CHECK(server.error == "");
    REQUIRE_MESSAGE(res, (res ? "" : res.err().message));
    CHECK(res->status == 201);
    CHECK(res->body == "got " + std::to_string(contents.size()));
    CHECK(server.method == "PUT");
    CHECK(server.target == "/targets/local/upload?to=%2Fopt%2Fx");
    CHECK(server.content_type == "application/gzip");
    CHECK(server.content_length == std::to_string(contents.size()));
    CHECK(server.body.size() == contents.size());
    CHECK(server.body == contents);
}

TEST_CASE("engine http: an empty body file is an empty body") {
    temp_dir tmp;
    const fs::path file = tmp.path / "empty";
    std::ofstream(file, std::ios::binary).flush();
    recording_server server;
    registryd::http_request req;
    req.method = "POST";
    req.target = "/x";
    req.body_file = file;
    auto res = send(server.port(), std::move(req));
    server.thread.join();
    REQUIRE_MESSAGE(res, (res ? "" : res.err().message));
    CHECK(server.content_length == "0");
    CHECK(server.body.empty());
}

TEST_CASE("engine http: a body file that cannot be opened fails the request, naming it, before connecting") {
    temp_dir tmp;
    // Nobody listens there: the file is looked at first.
    asio::io_context io;
    tcp::acceptor unused(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const std::uint16_t port = unused.local_endpoint().port();
    unused.close();

    registryd::http_request req;
    req.method = "PUT";
    req.target = "/x";
    req.body_file = tmp.path / "missing.tar.gz";
    auto res = send(port, req);
    REQUIRE_FALSE(res);
    CHECK(res.err().code == registry::errc::internal);
    CHECK(res.err().message.find((tmp.path / "missing.tar.gz").string()) != std::string::npos);

    req.body_file = tmp.path;  // a directory
    res = send(port, req);
    REQUIRE_FALSE(res);
    CHECK(res.err().code == registry::errc::internal);
    CHECK(res.err().message.find("not a regular file") != std::string::npos);

    std::ofstream(tmp.path / "f") << "x";
    req.body_file = tmp.path / "f";
    req.body = "and a body";
    res = send(port, req);
    REQUIRE_FALSE(res);
    CHECK(res.err().code == registry::errc::invalid_request);
}
