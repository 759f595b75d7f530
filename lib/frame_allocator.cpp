#include <registry/frame_allocator.hpp>

#include <array>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
// A cached frame stays poisoned, so that a use after free is still caught.
#define REGISTRY_FRAME_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define REGISTRY_FRAME_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define REGISTRY_FRAME_POISON(p, n) ((void)(p), (void)(n))
#define REGISTRY_FRAME_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace registry::detail {

namespace {

constexpr std::size_t class_count = frame_allocator::max_cached_size / frame_allocator::granularity;

std::size_t class_of(std::size_t size) noexcept { return (size - 1) / frame_allocator::granularity; }
std::size_t class_size(std::size_t c) noexcept { return (c + 1) * frame_allocator::granularity; }

struct free_frame {
    free_frame* next;
};

struct frame_cache {
    std::array<free_frame*, class_count> heads{};
    std::size_t bytes = 0;

    ~frame_cache();
};

// Set when the thread's cache has been destroyed (thread exit): frames freed
// after that, by later thread-local or static destructors, go back to the heap.
thread_local bool cache_closed = false;
thread_local frame_cache cache;

frame_cache::~frame_cache() {
    cache_closed = true;
    for (std::size_t c = 0; c < class_count; ++c) {
        while (free_frame* f = heads[c]) {
            REGISTRY_FRAME_UNPOISON(f, class_size(c));
            heads[c] = f->next;
            ::operator delete(f, class_size(c));
        }
    }
    bytes = 0;
}

}  // namespace

void* frame_allocator::allocate(std::size_t size) {
    if (size == 0 || size > max_cached_size) return ::operator new(size);
    const std::size_t c = class_of(size);
    if (free_frame* f = cache_closed ? nullptr : cache.heads[c]) {
        REGISTRY_FRAME_UNPOISON(f, class_size(c));
        cache.heads[c] = f->next;
        cache.bytes -= class_size(c);
        return f;
    }
    // Allocated at the class's size, so that any frame of the class can reuse it.
    return ::operator new(class_size(c));
}

void frame_allocator::deallocate(void* frame, std::size_t size) noexcept {
    if (size == 0 || size > max_cached_size) {
        ::operator delete(frame, size);
        return;
    }
    const std::size_t c = class_of(size);
    if (cache_closed || cache.bytes + class_size(c) > cache_bytes) {
        ::operator delete(frame, class_size(c));
        return;
    }
    auto* f = static_cast<free_frame*>(frame);
    f->next = cache.heads[c];
    cache.heads[c] = f;
    cache.bytes += class_size(c);
    REGISTRY_FRAME_POISON(f, class_size(c));
}

std::size_t frame_allocator::cached_bytes() noexcept { return cache_closed ? 0 : cache.bytes; }

}  // namespace registry::detail
