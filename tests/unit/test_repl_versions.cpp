// Several versions of one language in the REPL executor (fake engine, fake
// clock): the first of a name is the default, a request may name another,
// an unknown one is refused naming the configured ones, each version has a
// warm pool of its own image, and the outcome says which version ran.
#include "repl_fake_engine.hpp"

#include <registry/async_scope.hpp>
#include <registry/repl/executor.hpp>
#include <registry/testing/fake_clock.hpp>
#include <registry/testing/fake_random.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace registry;
using namespace std::chrono_literals;
using registry::test::fake_repl_engine;

repl::language c_by(std::string version, std::string image, std::size_t warm) {
    repl::language l;
    l.name = "c";
    l.version = std::move(version);
    l.image = std::move(image);
    l.source_file = "main.c";
    l.compile = {"cc", "-o", "main", "{source}"};
    l.run = {"./main"};
    l.defaults = repl::limits{5000ms, 1000, 64 << 20, 32, 500, false};
    l.maximum = l.defaults;
    l.warm_pool = warm;
    return l;
}

struct finished_listener final : repl::listener {
    std::optional<repl::outcome> finished;
    void on_queued(const std::string&, std::size_t) override {}
    void on_output(const std::string&, output_stream, std::uint64_t, std::string_view) override {}
    void on_finished(const repl::outcome& o) override { finished = o; }
};

struct fixture {
    fixture() {
        exec.emplace(clk, random, std::vector<repl::engine_slot>{{"local", &engine, 4}},
                     std::vector<repl::language>{c_by("gcc 12", "gcc-image", 1), c_by("clang 14", "clang-image", 2)});
        scope.spawn(exec->run(stop.get_token()));
    }
    ~fixture() {
        stop.request_stop();
        CHECK(scope.active() == 0);
    }

    result<repl::submission> execute(std::optional<std::string> version, std::shared_ptr<finished_listener> l = {}) {
        repl::request r;
        r.language = "c";
        r.version = std::move(version);
        r.files.push_back({"", "int main(void) { return 0; }"});
        return exec->execute(std::move(r), std::move(l));
    }

    testing::fake_clock clk;
    fake_repl_engine engine;
    testing::fake_random random;
    std::optional<repl::executor> exec;
    std::stop_source stop;
    async_scope scope;
};

}  // namespace

TEST_CASE("repl versions: the default is the first, another is named, each has its own warm pool") {
    fixture f;
    CHECK(f.exec->warm("c", "gcc 12") == 1);
    CHECK(f.exec->warm("c", "clang 14") == 2);
    CHECK(f.exec->warm("c") == 3);
    std::size_t gcc_images = 0;
    for (const auto& [id, c] : f.engine.containers) gcc_images += c->spec.image == "gcc-image";
    CHECK(gcc_images == 1);

    auto by_default = std::make_shared<finished_listener>();
    REQUIRE(f.execute(std::nullopt, by_default));
    auto c = f.engine.busy().front();
    CHECK(c->spec.image == "gcc-image");
    f.engine.exit(c, 0);
    REQUIRE(by_default->finished);
    CHECK(by_default->finished->language == "c");
    CHECK(by_default->finished->version == "gcc 12");

    auto clang = std::make_shared<finished_listener>();
    REQUIRE(f.execute("clang 14", clang));
    c = f.engine.busy().front();
    CHECK(c->spec.image == "clang-image");
    CHECK(f.exec->warm("c", "clang 14") == 2);  // taken from its pool, which refilled
    f.engine.exit(c, 0);
    REQUIRE(clang->finished);
    CHECK(clang->finished->version == "clang 14");
}

TEST_CASE("repl versions: an unknown version is refused naming the configured ones") {
    fixture f;
    const auto unknown = f.execute("tcc");
    REQUIRE_FALSE(unknown);
    CHECK(unknown.err().code == errc::invalid_request);
    CHECK(unknown.err().message == "version: unknown version 'tcc' of language 'c' (configured: 'gcc 12', 'clang 14')");
    CHECK(f.engine.busy().empty());
}
