// The container policy on its own: glob matching of image references, the
// ceilings, and the hardening it always sets (the manager's use of it:
// test_container_manager.cpp).
#include <registry/container_policy.hpp>

#include <doctest/doctest.h>

#include <string>

namespace {

using namespace registry;

std::vector<std::string> paths(const std::vector<field_error>& fields) {
    std::vector<std::string> out;
    for (const auto& f : fields) out.push_back(f.path);
    return out;
}

}  // namespace

TEST_CASE("container_policy: glob_match: '*' spans anything, '?' one character, the rest is literal") {
    CHECK(glob_match("localhost/*", "localhost/app:1"));
    CHECK(glob_match("localhost/*", "localhost/team/app@sha256:00ff"));
    CHECK_FALSE(glob_match("localhost/*", "docker.io/library/busybox:latest"));
    CHECK_FALSE(glob_match("localhost/*", "localhost"));
    CHECK(glob_match("docker.io/library/busybox:*", "docker.io/library/busybox:1.36"));
    CHECK_FALSE(glob_match("docker.io/library/busybox:*", "docker.io/library/busybox"));
    CHECK(glob_match("app:?", "app:1"));
    CHECK_FALSE(glob_match("app:?", "app:12"));
    CHECK(glob_match("*", ""));
    CHECK(glob_match("exact", "exact"));
    CHECK_FALSE(glob_match("exact", "exactly"));
    CHECK_FALSE(glob_match("", "x"));
    CHECK(glob_match("a*b*c", "a-b-x-c"));
    CHECK_FALSE(glob_match("a*b*c", "a-c-b"));
    // Backtracking is bounded: a hostile reference against many stars is quick.
    CHECK_FALSE(glob_match("*a*a*a*a*a*a*a*a*b", std::string(200, 'a')));
}

TEST_CASE("container_policy: an empty policy allows any image and limit, and still hardens") {
    container_policy none;
    container_spec spec;
    spec.image = "anything:latest";
    spec.limits.memory_bytes = 1ull << 40;
    CHECK(enforce(none, spec).empty());
    CHECK(spec.limits.memory_bytes == 1ull << 40);
    CHECK_FALSE(spec.limits.cpus);
    CHECK_FALSE(spec.limits.pids);
    CHECK(spec.drop_all_capabilities);
    CHECK(spec.no_new_privileges);
}

TEST_CASE("container_policy: every field outside the policy is named, absent limits get the ceiling") {
    container_policy p;
    p.images = {"localhost/*", "docker.io/library/busybox:*"};
    p.max_limits.memory_bytes = 256ull << 20;
    p.max_limits.cpus = 1.5;
    p.max_limits.pids = 128;

    container_spec over;
    over.image = "docker.io/library/alpine:3";
    over.limits.memory_bytes = (256ull << 20) + 1;
    over.limits.cpus = 2;
    over.limits.pids = 129;
    auto refused = enforce(p, over);
    CHECK(paths(refused) == std::vector<std::string>{"image", "limits.memory_bytes", "limits.cpus", "limits.pids"});
    CHECK(refused[0].problem ==
          "'docker.io/library/alpine:3' is not allowed by the container policy (allowed: localhost/*, "
          "docker.io/library/busybox:*)");
    CHECK(refused[1].problem == "must be at most 268435456 (the container policy's ceiling)");
    CHECK(refused[2].problem == "must be at most 1.5 (the container policy's ceiling)");

    container_spec at_ceiling;
    at_ceiling.image = "localhost/app:1";
    at_ceiling.limits.memory_bytes = 256ull << 20;
    at_ceiling.limits.cpus = 1.5;
    at_ceiling.limits.pids = 128;
    CHECK(enforce(p, at_ceiling).empty());

    container_spec unlimited;
    unlimited.image = "docker.io/library/busybox:1.36";
    unlimited.limits.pids = 8;
    CHECK(enforce(p, unlimited).empty());
    CHECK(unlimited.limits.memory_bytes == 256ull << 20);
    CHECK(unlimited.limits.cpus == 1.5);
    CHECK(unlimited.limits.pids == 8);  // what it asked, under the ceiling
    CHECK(unlimited.drop_all_capabilities);
    CHECK(unlimited.no_new_privileges);
}
