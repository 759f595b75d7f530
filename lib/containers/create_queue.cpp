#include "create_queue.hpp"

#include "codec/json_reader.hpp"
#include "codec/json_writer.hpp"
#include "codec/time.hpp"
#include "container_events.hpp"
#include "lease_book.hpp"
#include "store_keys.hpp"

#include <registry/ownership.hpp>
#include <registry/registry.hpp>

#include <algorithm>
#include <functional>
#include <utility>

namespace registry::containers {

// The stop_callback of an entry's listener.cancel: leaves the queue.
struct entry_canceller {
    create_queue* queue;
    std::string queue_id;
    void operator()() const noexcept {
        // The entry may go with this callback (its waiter resumes inline and
        // finishes): nothing of it is touched after cancel().
        auto done = queue->cancel(queue_id, identity::anonymous());
        (void)done;  // not found: it had left already
    }
};

struct create_queue::entry {
    queued_create info;
    std::function<void(const queued_create&, std::size_t)> on_position;
    std::size_t told = 0;                     // the position it was last told
    std::optional<result<node_ptr>> outcome;  // set when it leaves the queue
    std::coroutine_handle<> waiting;
    std::optional<std::stop_callback<entry_canceller>> on_cancel;
};

namespace {

std::string encode_queued(const queued_create& q) {
    std::string out;
    detail::json_writer w(out);
    w.begin_object().key("owner").string(q.owner).key("image").string(q.image);
    if (q.engine) w.key("engine").string(*q.engine);
    w.key("queued_at_ms").number(ms(q.queued_at)).end_object();
    return out;
}

result<queued_create> decode_queued(std::string_view json) {
    using namespace detail;
    return decode_record<queued_create>(json, [](decoder& d, dom::element root, queued_create& q) {
        static constexpr std::string_view names[] = {"owner", "image", "engine", "queued_at_ms"};
        members m{path{}, names};
        return open(d, root, m) && required(d, m, "owner", q.owner) && required(d, m, "image", q.image) &&
               optional(d, m, "engine", q.engine) && required(d, m, "queued_at_ms", q.queued_at);
    });
}

error cancelled(const queued_create& q) {
    return error{errc::unavailable, "queued container create " + q.queue_id + " was cancelled"};
}

}  // namespace

task<result<void>> create_queue::open(store& st) {
    store_state state;
    try {
        state = co_await load_copy(st, std::string(queue_prefix));
    } catch (const store_error& e) {
        co_return fail(errc::unavailable, std::string("store: ") + e.what());
    }
    std::vector<store_mutation> forgotten;
    for (auto& [key, value] : state.entries) {
        const std::string_view id = std::string_view(key).substr(queue_prefix.size());
        auto number = id.starts_with('q') ? parse_number<std::uint64_t>(id.substr(1)) : std::nullopt;
        auto decoded = decode_queued(value);
        if (!number || !decoded) {
            co_return fail(errc::internal, "stored record '" + key + "': " +
                                               (decoded ? std::string("not a queue id") : decoded.err().message));
        }
        next_id_ = std::max(next_id_, *number + 1);
        decoded->queue_id = std::string(id);
        if (opt_.on_queue_dropped) opt_.on_queue_dropped(*decoded);
        forgotten.push_back({key, std::nullopt});
    }
    if (forgotten.empty()) co_return result<void>{};
    std::vector<std::shared_ptr<event>> none;
    auto written = co_await reg_.record(std::move(none), std::move(forgotten), "dropped queued container creates");
    if (!written) co_return unexpected{written.err()};
    co_return result<void>{};
}

task<result<create_queue::entry_ptr>> create_queue::enqueue(const container_request& request, queue_listener listener) {
    if (entries_.size() >= opt_.max_queued) {
        co_return fail(errc::limit_exceeded, "quota containers.max_queued: every eligible engine is at its capacity "
                                             "and the create queue holds its maximum of " +
                                                 std::to_string(opt_.max_queued) + " requests");
    }
    if (opt_.max_queued_per_identity != 0) {
        const auto mine = std::count_if(entries_.begin(), entries_.end(),
                                        [&](const entry_ptr& e) { return e->info.owner == request.owner; });
        if (static_cast<std::size_t>(mine) >= opt_.max_queued_per_identity) {
            co_return fail(errc::limit_exceeded, "quota containers.max_queued_per_identity: '" + request.owner +
                                                     "' has its maximum of " +
                                                     std::to_string(opt_.max_queued_per_identity) +
                                                     " container creates queued");
        }
    }
    auto e = std::make_shared<entry>();
    e->info.queue_id = "q" + std::to_string(next_id_++);
    e->info.owner = request.owner;
    e->info.image = request.spec.image;
    e->info.engine = request.engine;
    e->info.queued_at = clk_.now();
    e->on_position = std::move(listener.on_position);
    // In the queue (and counted against its bounds) before it is durable; a
    // slot freed meanwhile may already be its own.
    entries_.push_back(e);
    std::vector<store_mutation> record;
    record.push_back({queue_key(e->info.queue_id), encode_queued(e->info)});
    std::vector<std::shared_ptr<event>> none;
    auto written = co_await reg_.record(std::move(none), std::move(record), "queued container create");
    if (!written) {
        std::vector<entry_ptr> done;
        if (!e->outcome) leave(e, unexpected{written.err()}, done);
        if (e->outcome && *e->outcome) {
            --(**e->outcome)->creating;  // a slot handed to it during the write goes back
            wake();
        }
        report_positions();
        co_return unexpected{written.err()};
    }
    if (!e->outcome) {
        report_positions();
        if (listener.cancel.stop_possible()) e->on_cancel.emplace(listener.cancel, entry_canceller{this, e->info.queue_id});
    }
    co_return e;
}

task<result<node_ptr>> create_queue::wait(entry_ptr e) {
    struct turn {
        entry& e;
        bool await_ready() const noexcept { return e.outcome.has_value(); }
        void await_suspend(std::coroutine_handle<> h) noexcept { e.waiting = h; }
        void await_resume() const noexcept {}
    };
    // A waiter destroyed while waiting (its request abandoned) leaves the queue.
    struct leave_if_abandoned {
        create_queue& q;
        const entry_ptr& e;
        ~leave_if_abandoned() {
            if (e->outcome) return;
            std::erase(q.entries_, e);
            q.report_positions();
        }
    } guard{*this, e};
    co_await turn{*e};
    e->on_cancel.reset();
    result<node_ptr> outcome = std::move(*e->outcome);
    std::vector<store_mutation> forget;
    forget.push_back({queue_key(e->info.queue_id), std::nullopt});
    std::vector<std::shared_ptr<event>> none;
    auto forgotten = co_await reg_.record(std::move(none), std::move(forget), "queued container create");
    (void)forgotten;  // a failed store makes the registry unavailable: the create fails at its first write
    co_return outcome;
}

// `e` by value: it may be an element of entries_, which the erase moves.
void create_queue::leave(entry_ptr e, result<node_ptr> outcome, std::vector<entry_ptr>& done) {
    std::erase(entries_, e);
    e->outcome = std::move(outcome);
    done.push_back(std::move(e));
}

void create_queue::wake() {
    if (waking_) {
        again_ = true;
        return;
    }
    waking_ = true;
    std::vector<entry_ptr> done;
    do {
        again_ = false;
        bool unnamed_full = false;  // an entry that takes any node found none: neither will the next ones
        for (std::size_t i = 0; i < entries_.size();) {
            const entry_ptr e = entries_[i];
            if (!e->info.engine && unnamed_full) {
                ++i;
                continue;
            }
            auto chosen = pool_.schedule(e->info.engine, book_);
            if (chosen) {
                ++(*chosen)->creating;
                leave(e, std::move(chosen), done);
                continue;
            }
            if (chosen.err().code == errc::not_found) {  // the node it named is gone
                leave(e, std::move(chosen), done);
                continue;
            }
            if (!e->info.engine) unnamed_full = true;
            ++i;
        }
        if (!done.empty()) {
            report_positions();
            resume(done);
        }
    } while (again_);
    waking_ = false;
}

result<void> create_queue::cancel(std::string_view queue_id, const identity& by) {
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const entry_ptr& e) { return e->info.queue_id == queue_id; });
    if (it == entries_.end()) return fail(errc::not_found, "no queued container create '" + std::string(queue_id) + "'");
    const entry_ptr e = *it;
    if (auto refused = check_owner(by, e->info.owner, "cancel", "queued container create", e->info.queue_id)) {
        return unexpected{std::move(*refused)};
    }
    std::vector<entry_ptr> done;
    leave(e, unexpected{cancelled(e->info)}, done);
    report_positions();
    resume(done);
    return {};
}

void create_queue::fail_all(const error& why) {
    std::vector<entry_ptr> done;
    while (!entries_.empty()) leave(entries_.front(), unexpected{why}, done);
    resume(done);
}

std::vector<queued_create> create_queue::list() const {
    std::vector<queued_create> out;
    out.reserve(entries_.size());
    for (const auto& e : entries_) out.push_back(e->info);
    return out;
}

void create_queue::report_positions() {
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        entry& e = *entries_[i];
        if (e.told == i + 1) continue;
        e.told = i + 1;
        if (e.on_position) e.on_position(e.info, i + 1);
    }
}

void create_queue::resume(std::vector<entry_ptr>& done) {
    // Each resumes inline and runs until it waits for an engine or the store.
    auto batch = std::exchange(done, {});
    for (auto& e : batch) {
        if (e->waiting) std::exchange(e->waiting, {}).resume();
    }
}

}  // namespace registry::containers
