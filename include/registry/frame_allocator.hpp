// Memory for the library's coroutine frames (task<T>, async_scope's runner).
//
// Each request creates and destroys several frames (the embedder's handler,
// the protocol's run and action tasks, the scope's runner). A small cache of
// freed frames per thread, by size class, makes that a list pop and push
// instead of malloc and free. It is bounded: at most cache_bytes stay cached
// per thread, the rest is returned at once; frames above max_cached_size are
// never cached. A frame may be freed on another thread than the one that
// allocated it; it then joins that thread's cache.
#pragma once

#include <cstddef>

namespace registry::detail {

struct frame_allocator {
    static constexpr std::size_t granularity = 64;         // size classes: 1-64, 65-128, ... bytes
    static constexpr std::size_t max_cached_size = 2048;   // larger frames go straight to operator new
    static constexpr std::size_t cache_bytes = 64 * 1024;  // per thread

    // `size` must be the one given to allocate(), as the compiler does for
    // a coroutine frame.
    static void* allocate(std::size_t size);
    static void deallocate(void* frame, std::size_t size) noexcept;

    // The bytes this thread's cache holds (for tests).
    static std::size_t cached_bytes() noexcept;
};

}  // namespace registry::detail
