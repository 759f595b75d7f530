// A std::deque that exists only while it holds something: created on a
// push, released when emptied. libstdc++'s std::deque allocates its map and
// a 512-byte block as soon as it is constructed; with 10,000 idle WebSocket
// connections, each holding an outbound queue that an idle connection does
// not use (or no longer uses), that was ~0.6 KB of RSS per connection. The
// price is two allocations per burst of frames, next to a sendmsg. Elements
// never move once pushed (the front one is being written from).
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <utility>

namespace registryd {

template <typename T>
class frame_fifo {
public:
    bool empty() const noexcept { return !items_ || items_->empty(); }
    std::size_t size() const noexcept { return items_ ? items_->size() : 0; }

    // Only on a non-empty fifo.
    T& front() { return items_->front(); }
    T& operator[](std::size_t i) { return (*items_)[i]; }
    T& back() { return items_->back(); }
    void pop_front() {
        items_->pop_front();
        if (items_->empty()) items_.reset();
    }
    void pop_back() {
        items_->pop_back();
        if (items_->empty()) items_.reset();
    }

    void push_back(T item) {
        if (!items_) items_ = std::make_unique<std::deque<T>>();
        items_->push_back(std::move(item));
    }

    void clear() noexcept { items_.reset(); }

private:
    std::unique_ptr<std::deque<T>> items_;
};

}  // namespace registryd
