// The coroutine frame cache: size classes, reuse, its bound, and that task
// and async_scope frames go through it.
#include <registry/async_scope.hpp>
#include <registry/frame_allocator.hpp>
#include <registry/task.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <new>
#include <thread>
#include <utility>
#include <vector>

using registry::async_scope;
using registry::task;
using registry::detail::frame_allocator;

namespace {

task<int> answer() { co_return 42; }

// Empties this thread's cache of blocks of `size`'s class (up to `n` of them)
// so that a test starts from a known state.
void drain(std::size_t size, std::size_t n) {
    std::vector<void*> taken;
    for (std::size_t i = 0; i < n; ++i) taken.push_back(frame_allocator::allocate(size));
    const std::size_t rounded = (size + frame_allocator::granularity - 1) / frame_allocator::granularity *
                                frame_allocator::granularity;
    for (void* p : taken) ::operator delete(p, rounded);
}

}  // namespace

TEST_CASE("frame_allocator: a freed frame is reused by the next frame of its size class") {
    drain(64, frame_allocator::cache_bytes / 64);
    drain(128, frame_allocator::cache_bytes / 128);
    const std::size_t before = frame_allocator::cached_bytes();

    void* a = frame_allocator::allocate(40);
    frame_allocator::deallocate(a, 40);
    CHECK(frame_allocator::cached_bytes() == before + 64);

    void* b = frame_allocator::allocate(64);  // same class (1-64 bytes)
    CHECK(b == a);
    CHECK(frame_allocator::cached_bytes() == before);

    frame_allocator::deallocate(b, 64);
    void* c = frame_allocator::allocate(65);  // the next class: not this block
    CHECK(c != b);
    CHECK(frame_allocator::cached_bytes() == before + 64);
    frame_allocator::deallocate(c, 65);
    CHECK(frame_allocator::cached_bytes() == before + 64 + 128);
    drain(64, 1);
    drain(128, 1);
}

TEST_CASE("frame_allocator: the cache is bounded and frames above the largest class are not cached") {
    constexpr std::size_t n = frame_allocator::cache_bytes / 64 + 16;
    std::vector<void*> frames;
    for (std::size_t i = 0; i < n; ++i) frames.push_back(frame_allocator::allocate(64));
    for (void* p : frames) frame_allocator::deallocate(p, 64);
    CHECK(frame_allocator::cached_bytes() == frame_allocator::cache_bytes);

    drain(64, n);
    const std::size_t before = frame_allocator::cached_bytes();
    CHECK(before < frame_allocator::cache_bytes);
    void* big = frame_allocator::allocate(frame_allocator::max_cached_size + 1);
    frame_allocator::deallocate(big, frame_allocator::max_cached_size + 1);
    CHECK(frame_allocator::cached_bytes() == before);
}

TEST_CASE("frame_allocator: task and async_scope frames come from the cache and go back to it") {
    // The compiler gives operator delete the size it gave operator new: the
    // frame lands in the class it is taken from again.
    { auto warm = answer(); }
    const std::size_t cached = frame_allocator::cached_bytes();
    {
        auto t = answer();
        CHECK(frame_allocator::cached_bytes() < cached);
    }
    CHECK(frame_allocator::cached_bytes() == cached);

    async_scope scope;
    int got = 0;
    auto body = [&]() -> task<void> {
        auto inner = answer();
        got = co_await std::move(inner);
    };
    scope.spawn(body());  // leaves the runner's, body's and answer's frames in the cache
    const std::size_t after_first = frame_allocator::cached_bytes();
    got = 0;
    scope.spawn(body());  // takes them and gives them back
    CHECK(got == 42);
    CHECK(scope.active() == 0);
    CHECK(frame_allocator::cached_bytes() == after_first);
}

TEST_CASE("frame_allocator: a frame freed on another thread joins that thread's cache") {
    drain(128, frame_allocator::cache_bytes / 128);
    const std::size_t here = frame_allocator::cached_bytes();
    void* frame = frame_allocator::allocate(100);
    std::size_t there_before = 0;
    std::size_t there_after = 0;
    std::thread other([&] {
        there_before = frame_allocator::cached_bytes();
        frame_allocator::deallocate(frame, 100);
        there_after = frame_allocator::cached_bytes();
    });  // its cache is freed when it exits (the sanitizer build checks for leaks)
    other.join();
    CHECK(there_before == 0);
    CHECK(there_after == 128);
    CHECK(frame_allocator::cached_bytes() == here);
}
