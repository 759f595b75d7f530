#include "lease_book.hpp"

#include "codec/container_record.hpp"
#include "container_events.hpp"
#include "store_keys.hpp"

#include <registry/registry.hpp>

#include <algorithm>

namespace registry::containers {

task<result<void>> lease_book::open(store& st) {
    store_state state;
    try {
        state = co_await load_copy(st, std::string(store_prefix));
    } catch (const store_error& e) {
        co_return fail(errc::unavailable, std::string("store: ") + e.what());
    }
    for (auto& [key, value] : state.entries) {
        if (key == next_lease_key) {
            auto n = parse_number<std::uint64_t>(value);
            if (!n) co_return fail(errc::internal, "stored record '" + key + "': not a number");
            next_lease_id_ = std::max(next_lease_id_, *n);
            continue;
        }
        if (key.starts_with(lost_prefix)) {
            auto id = parse_number<std::uint64_t>(std::string_view(key).substr(lost_prefix.size()));
            auto at = parse_number<std::int64_t>(value);
            if (!id || !at) co_return fail(errc::internal, "stored record '" + key + "': not a number");
            lost_deadlines_[*id] = time_point{milliseconds{*at}};
            continue;
        }
        if (!key.starts_with(lease_prefix)) continue;
        auto decoded = detail::decode_container_record(value);
        if (!decoded) co_return fail(errc::internal, "stored record '" + key + "': " + decoded.err().message);
        auto c = std::make_shared<managed_container>(std::move(decoded.value()));
        next_lease_id_ = std::max(next_lease_id_, c->lease_id + 1);
        by_container_.emplace(c->container_id, c->lease_id);
        leases_[c->lease_id].c = std::move(c);
    }
    co_return result<void>{};
}

container_ptr lease_book::current(std::uint64_t lease_id) const {
    auto it = leases_.find(lease_id);
    return it == leases_.end() ? nullptr : it->second.c;
}

container_ptr lease_book::find(std::string_view container_id) const {
    auto it = by_container_.find(container_id);
    return it == by_container_.end() ? nullptr : current(it->second);
}

std::size_t lease_book::load(std::string_view engine) const {
    std::size_t count = 0;
    for (const auto& [id, slot] : leases_) {
        if (slot.c->engine == engine && occupies(slot.c->state)) ++count;
    }
    return count;
}

task<result<std::uint64_t>> lease_book::reserve_lease_id() {
    const std::uint64_t lease_id = next_lease_id_++;
    std::vector<store_mutation> counter;
    counter.push_back({std::string(next_lease_key), std::to_string(next_lease_id_)});
    std::vector<std::shared_ptr<event>> no_events;
    auto reserved = co_await reg_.record(std::move(no_events), std::move(counter), "lease id");
    if (!reserved) co_return unexpected{reserved.err()};
    co_return lease_id;
}

task<result<std::uint64_t>> lease_book::put(container_ptr next, std::vector<std::shared_ptr<event>> events,
                                            std::string_view what) {
    auto& slot = leases_[next->lease_id];
    slot.c = next;
    by_container_.insert_or_assign(next->container_id, next->lease_id);
    std::vector<store_mutation> mutations;
    mutations.push_back({lease_key(next->lease_id), detail::encode_container_record(*next)});
    auto recorded = co_await reg_.record(std::move(events), std::move(mutations), what);
    changed();
    co_return recorded;
}

task<result<std::uint64_t>> lease_book::drop(std::uint64_t lease_id, std::vector<std::shared_ptr<event>> events,
                                             std::string_view what) {
    auto it = leases_.find(lease_id);
    if (it != leases_.end()) {
        by_container_.erase(it->second.c->container_id);
        leases_.erase(it);
    }
    std::vector<store_mutation> mutations;
    mutations.push_back({lease_key(lease_id), std::nullopt});
    auto recorded = co_await reg_.record(std::move(events), std::move(mutations), what);
    changed();
    co_return recorded;
}

task<void> lease_book::lose_node(std::string_view engine, const std::string& reason, time_point now) {
    std::vector<std::shared_ptr<event>> events;
    std::vector<store_mutation> mutations;
    for (auto it = leases_.begin(); it != leases_.end();) {
        if (it->second.c->engine != engine) {
            ++it;
            continue;
        }
        auto lost = with_state(it->second.c, managed_state::lost);
        events.push_back(state_changed(lost, it->second.c->state, reason));
        mutations.push_back({lease_key(it->first), std::nullopt});
        if (lost->expires_at > now) {
            lost_deadlines_[it->first] = lost->expires_at;
            mutations.push_back({lost_key(it->first), std::to_string(ms(lost->expires_at))});
        }
        by_container_.erase(it->second.c->container_id);
        it = leases_.erase(it);
    }
    if (events.empty()) co_return;
    auto written = co_await reg_.record(std::move(events), std::move(mutations), "lost containers");
    (void)written;  // a failed store makes the registry unavailable; nothing more to do here
    changed();
}

std::optional<time_point> lease_book::lost_deadline(std::uint64_t lease_id) const {
    auto it = lost_deadlines_.find(lease_id);
    if (it == lost_deadlines_.end()) return std::nullopt;
    return it->second;
}

task<void> lease_book::forget_past_lost_deadlines(time_point now) {
    std::vector<store_mutation> mutations;
    for (auto it = lost_deadlines_.begin(); it != lost_deadlines_.end();) {
        if (it->second > now) {
            ++it;
            continue;
        }
        mutations.push_back({lost_key(it->first), std::nullopt});
        it = lost_deadlines_.erase(it);
    }
    if (mutations.empty()) co_return;
    std::vector<std::shared_ptr<event>> none;
    auto written = co_await reg_.record(std::move(none), std::move(mutations), "past lost deadlines");
    (void)written;
}

bool lease_book::adopt_held(const std::string& engine, const container_summary& s) {
    auto label = s.labels.find(std::string(container_labels::expires));
    if (label == s.labels.end()) return false;
    auto expires = parse_number<std::int64_t>(label->second);
    if (!expires) return false;
    held_.try_emplace(held_key{engine, s.id}, held_slot{time_point{milliseconds{*expires}}});
    return true;
}

void lease_book::forget_held_missing(std::string_view engine, const std::set<std::string>& found) {
    std::erase_if(held_, [&](const auto& h) { return h.first.first == engine && !found.contains(h.first.second); });
}

}  // namespace registry::containers
