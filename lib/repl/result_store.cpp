// The kept results of finished REPL executions (include/registry/repl/result_store.hpp).
#include <registry/repl/result_store.hpp>

#include "codec/keyspace.hpp"
#include "outcome_json.hpp"

#include <registry/async_scope.hpp>
#include <registry/registry.hpp>

#include <map>
#include <set>
#include <string>
#include <utility>

namespace registry::repl {

namespace {

using age_key = std::pair<time_point, std::string>;  // finished_at, execution id: oldest first

std::string key_of(std::string_view execution_id) {
    return std::string(::registry::detail::keyspace::repl_results) + std::string(execution_id);
}

}  // namespace

struct result_store::impl {
    impl(class registry& r, store& s, result_store_options o) : reg(r), st(s), opts(o) {
        writes.on_error([](std::exception_ptr) {});  // a failed store makes the registry unavailable: nothing to add
    }

    struct entry {
        outcome_ptr o;
        std::uint64_t bytes = 0;
    };
    struct owner_share {
        std::set<age_key> by_age;
        std::uint64_t bytes = 0;
    };

    class registry& reg;
    store& st;
    result_store_options opts;
    std::map<std::string, entry, std::less<>> entries;
    std::set<age_key> by_age;
    std::map<std::string, owner_share, std::less<>> owners;
    std::uint64_t total_bytes = 0;
    async_scope writes;

    bool expired(const outcome& o, time_point now) const { return o.finished_at + opts.retention <= now; }

    void insert(outcome_ptr o, std::uint64_t bytes) {
        const age_key age{o->finished_at, o->execution_id};
        by_age.insert(age);
        auto& share = owners[o->owner];
        share.by_age.insert(age);
        share.bytes += bytes;
        total_bytes += bytes;
        std::string id = o->execution_id;  // before `o` is moved from
        entries.insert_or_assign(std::move(id), entry{std::move(o), bytes});
    }

    void erase(std::string id, std::vector<store_mutation>& out) {  // a copy: callers name it by an index entry erased here
        auto it = entries.find(id);
        if (it == entries.end()) return;
        const outcome& o = *it->second.o;
        const age_key age{o.finished_at, o.execution_id};
        by_age.erase(age);
        auto share = owners.find(o.owner);
        share->second.by_age.erase(age);
        share->second.bytes -= it->second.bytes;
        if (share->second.by_age.empty()) owners.erase(share);
        total_bytes -= it->second.bytes;
        out.push_back({key_of(id), std::nullopt});
        entries.erase(it);
    }

    // The oldest go until every bound holds.
    void bound(std::vector<store_mutation>& out) {
        for (auto share = owners.begin(); share != owners.end();) {
            const auto next = std::next(share);
            while (share->second.by_age.size() > opts.max_results_per_identity ||
                   share->second.bytes > opts.max_bytes_per_identity) {
                const bool last = share->second.by_age.size() == 1;
                erase(share->second.by_age.begin()->second, out);
                if (last) break;  // the share is gone with it
            }
            share = next;
        }
        while (!by_age.empty() && (by_age.size() > opts.max_results || total_bytes > opts.max_bytes)) {
            erase(by_age.begin()->second, out);
        }
    }

    void sweep(time_point now, std::vector<store_mutation>& out) {
        while (!by_age.empty() && by_age.begin()->first + opts.retention <= now) erase(by_age.begin()->second, out);
    }

    void write(std::vector<store_mutation> mutations) {
        if (mutations.empty()) return;
        writes.spawn(record(std::move(mutations)));
    }

    task<void> record(std::vector<store_mutation> mutations) {
        auto done = co_await reg.record({}, std::move(mutations), "repl result");
        (void)done;
    }

    bool visible(const outcome& o, const identity& by) const { return by.admin || o.owner == by.name; }
};

result_store::result_store(class registry& reg, store& st, result_store_options options)
    : impl_(std::make_unique<impl>(reg, st, options)) {}

result_store::~result_store() = default;

task<result<void>> result_store::open() {
    auto& m = *impl_;
    std::vector<store_mutation> changes;
    const time_point now = m.reg.clk().now();
    co_await m.st.load(std::string(::registry::detail::keyspace::repl_results), [&](std::string_view key, std::string_view value) {
        auto o = detail::decode_outcome_record(value);
        // A record this build cannot read, or one past its time, goes.
        if (!o || key != key_of(o->execution_id) || m.expired(*o, now)) {
            changes.push_back({std::string(key), std::nullopt});
            return;
        }
        const std::uint64_t bytes = value.size();
        m.insert(std::make_shared<const outcome>(std::move(*o)), bytes);
    });
    m.bound(changes);
    if (!changes.empty()) {
        auto written = co_await m.reg.record({}, std::move(changes), "repl results");
        if (!written) co_return unexpected{written.err()};
    }
    co_return result<void>{};
}

task<void> result_store::run(std::stop_token stop) {
    auto& m = *impl_;
    for (;;) {
        std::vector<store_mutation> swept;
        m.sweep(m.reg.clk().now(), swept);
        m.write(std::move(swept));
        const bool slept = co_await m.reg.clk().sleep_until(m.reg.clk().now() + m.opts.sweep_interval, stop);
        if (!slept) break;
    }
    co_await flush();
}

task<void> result_store::flush() { co_await impl_->writes.join(); }

void result_store::keep(const outcome& o) {
    auto& m = *impl_;
    if (m.opts.retention <= milliseconds::zero() || o.execution_id.empty()) return;
    std::string record = detail::encode_outcome_record(o);
    const std::uint64_t bytes = record.size();
    if (bytes > m.opts.max_bytes || bytes > m.opts.max_bytes_per_identity) return;
    std::vector<store_mutation> changes;
    m.erase(o.execution_id, changes);  // never twice; its erase is overwritten below
    changes.clear();
    m.insert(std::make_shared<const outcome>(o), bytes);
    changes.push_back({key_of(o.execution_id), std::move(record)});
    m.bound(changes);
    m.write(std::move(changes));
}

outcome_ptr result_store::find(std::string_view execution_id, const identity& by) const {
    const auto& m = *impl_;
    auto it = m.entries.find(execution_id);
    if (it == m.entries.end()) return nullptr;
    const outcome& o = *it->second.o;
    if (!m.visible(o, by) || m.expired(o, m.reg.clk().now())) return nullptr;  // expired: not swept yet
    return it->second.o;
}

std::vector<outcome_ptr> result_store::history(const identity& by, std::size_t limit,
                                               std::optional<std::string_view> owner) const {
    const auto& m = *impl_;
    if (!by.admin) owner = by.name;
    const std::set<age_key>* ages = &m.by_age;
    if (owner) {
        auto share = m.owners.find(*owner);
        if (share == m.owners.end()) return {};
        ages = &share->second.by_age;
    }
    const time_point now = m.reg.clk().now();
    std::vector<outcome_ptr> out;
    for (auto it = ages->rbegin(); it != ages->rend() && out.size() < limit; ++it) {
        const outcome_ptr& o = m.entries.find(it->second)->second.o;
        if (!m.expired(*o, now)) out.push_back(o);
    }
    return out;
}

std::size_t result_store::size() const noexcept { return impl_->entries.size(); }
std::uint64_t result_store::bytes() const noexcept { return impl_->total_bytes; }
const result_store_options& result_store::options() const noexcept { return impl_->opts; }

}  // namespace registry::repl
