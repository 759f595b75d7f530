#include "store/etcd_store_port.hpp"

#include "engine/engine_http.hpp"
#include "observability/log.hpp"
#include "store/base64.hpp"
#include "store/etcd_election.hpp"

#include "codec/json_writer.hpp"

#include <registry/async_scope.hpp>
#include <registry/cancellation.hpp>

#include <simdjson.h>

#include <charconv>
#include <coroutine>
#include <exception>
#include <map>
#include <optional>
#include <stop_token>
#include <string_view>
#include <utility>

namespace registryd {

namespace {

namespace dom = simdjson::dom;
using registry::store_error;

constexpr std::size_t range_page = 1000;
// etcd's default --max-txn-ops: a group of batches is split to fit (a single
// batch beyond it is sent whole and refused by an etcd that keeps the default).
constexpr std::size_t max_txn_ops = 128;

// A commit suspended until its transaction is answered; in its coroutine frame.
struct waiter {
    std::coroutine_handle<> handle;
    std::exception_ptr error;
};

}  // namespace

class etcd_store_port::impl : public std::enable_shared_from_this<impl> {
public:
    impl(boost::asio::io_context& io, etcd_options o)
        : opts_(std::move(o)),
          gateway_(std::make_shared<etcd_gateway>(io, opts_)),
          election_(std::make_shared<etcd_election>(io, gateway_)) {
        flushes_.on_error([](std::exception_ptr) {});  // flush() catches what it can report
    }

    std::unique_ptr<etcd_probe> make_probe(boost::asio::io_context& io) const { return gateway_->make_probe(io); }
    const std::shared_ptr<etcd_gateway>& gateway() const noexcept { return gateway_; }
    etcd_election& election() noexcept { return *election_; }
    const etcd_election& election() const noexcept { return *election_; }

    registry::task<std::uint64_t> load(std::string prefix, registry::store_visitor each) {
        const std::string from = opts_.prefix + prefix;
        const std::string end = etcd_prefix_end(from);
        std::string next = from;
        for (;;) {
            std::string body;
            registry::detail::json_writer w(body);
            w.begin_object()
                .key("key").string(base64_encode(next))
                .key("range_end").string(base64_encode(end))
                .key("limit").number(range_page);
            if (pinned_revision_ > 0) w.key("revision").string(std::to_string(pinned_revision_));
            w.end_object();
            dom::element doc = co_await pinned_range(std::move(body));
            dom::array kvs;
            if (doc["kvs"].get(kvs) == simdjson::SUCCESS) {
                std::string last;
                for (dom::element kv : kvs) {
                    auto key = base64_decode(etcd_field(kv, "key"));
                    std::string_view v64;
                    auto value = kv["value"].get(v64) == simdjson::SUCCESS ? base64_decode(v64) : std::optional<std::string>{""};
                    if (!key || !value || !key->starts_with(opts_.prefix)) throw store_error("etcd: a key or value is not base64");
                    const std::string_view relative = std::string_view(*key).substr(opts_.prefix.size());
                    if (relative != etcd_revision_key) each(relative, *value);
                    last = std::move(*key);
                }
                bool more = false;
                if (doc["more"].get(more) == simdjson::SUCCESS && more && !last.empty()) {
                    next = last + '\0';
                    continue;
                }
            }
            break;
        }
        co_return co_await stored_revision();
    }

    registry::task<void> commit(registry::store_batch batch) {
        if (stopped_) throw store_error("etcd store: stopped");
        if (poisoned_) std::rethrow_exception(poisoned_);
        if (const auto& why = election_->deposed()) throw store_error("etcd: no longer the registry's writer: " + *why);
        // A standby's registry refuses writes itself (not_writer); nothing unfenced reaches etcd anyway.
        if (election_->campaigning() && election_->fence() == 0) throw store_error("etcd store: a standby does not write");
        waiter w;
        queued_.push_back({std::move(batch), &w});
        if (!flushing_) {
            flushing_ = true;
            flushes_.spawn(flush(shared_from_this()));
        }
        struct awaiter {
            waiter& w;
            bool await_ready() const noexcept { return false; }
            void await_suspend(std::coroutine_handle<> h) noexcept { w.handle = h; }
            void await_resume() const {
                if (w.error) std::rethrow_exception(w.error);
            }
        };
        co_await awaiter{w};
    }

    void stop() {
        stopped_ = true;
        election_->stop();
        fail(std::make_exception_ptr(store_error("etcd store: stopped")), std::move(queued_));
        queued_.clear();
    }

    std::uint64_t txns() const noexcept { return txns_; }

    // ------------------------------------------------- the standby's reads

    void pin_loads() { pin_ = true; }
    std::uint64_t pinned_revision() const noexcept { return pinned_revision_; }
    std::uint64_t unpin_loads() {
        pin_ = false;
        return std::exchange(pinned_revision_, 0);
    }


private:
    struct queued {
        registry::store_batch batch;
        waiter* w;
    };

    // A range of load(): after pin_loads(), the first one pins the revision
    // (its answer's), and a pinned one that etcd compacted away says so.
    registry::task<dom::element> pinned_range(std::string body) {
        const std::uint64_t pinned = pinned_revision_;
        dom::element doc;
        try {
            doc = co_await gateway_->call("/v3/kv/range", std::move(body));
        } catch (const etcd_unreachable&) {
            throw;
        } catch (const store_error& e) {
            if (pinned > 0 && std::string_view(e.what()).find("compacted") != std::string_view::npos) {
                throw store_error("etcd: the registry's snapshot at etcd revision " + std::to_string(pinned) +
                                  " was compacted away while it was loading; load it again (" + e.what() + ")");
            }
            throw;
        }
        if (pin_ && pinned_revision_ == 0) {
            dom::element header;
            if (doc["header"].get(header) != simdjson::SUCCESS) throw store_error("etcd: no header in a range's answer");
            pinned_revision_ = etcd_number(etcd_field(header, "revision"));
        }
        co_return doc;
    }

    registry::task<std::uint64_t> stored_revision() {
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object().key("key").string(base64_encode(opts_.prefix + std::string(etcd_revision_key)));
        if (pinned_revision_ > 0) w.key("revision").string(std::to_string(pinned_revision_));
        w.end_object();
        dom::element doc = co_await pinned_range(std::move(body));
        dom::array kvs;
        if (doc["kvs"].get(kvs) != simdjson::SUCCESS || kvs.size() == 0) co_return 0;
        auto value = base64_decode(etcd_field(*kvs.begin(), "value"));
        if (!value) throw store_error("etcd: the revision is not base64");
        co_return etcd_number(*value);
    }

    // Sends what is queued, in transactions of at most max_txn_ops, until
    // nothing is; resumes each group's commits in order once etcd answered.
    static registry::task<void> flush(std::shared_ptr<impl> self) {
        while (!self->queued_.empty() && !self->stopped_) {
            std::vector<queued> group;
            std::map<std::string, std::optional<std::string>> writes;  // a key once per txn: etcd refuses repeats
            std::uint64_t revision = 0;
            while (!self->queued_.empty()) {
                auto& next = self->queued_.front();
                std::size_t adds = 0;
                for (const auto& m : next.batch.mutations) adds += writes.contains(m.key) ? 0 : 1;
                if (!group.empty() && writes.size() + adds + 1 > max_txn_ops) break;
                for (auto& m : next.batch.mutations) writes[m.key] = m.value;
                revision = std::max(revision, next.batch.revision);
                group.push_back(std::move(next));
                self->queued_.erase(self->queued_.begin());
            }
            std::exception_ptr error;
            std::optional<std::string> unreachable;
            try {
                co_await self->send(writes, revision);
                ++self->txns_;
            } catch (const etcd_unreachable& e) {
                unreachable = e.what();
            } catch (...) {
                error = std::current_exception();
                self->poisoned_ = error;
            }
            if (unreachable) {
                // Every batch goes back, in order: this group's (applied or
                // not, which re-sending converges) and the ones queued behind.
                auto waiting = std::move(group);
                for (auto& q : self->queued_) waiting.push_back(std::move(q));
                self->queued_.clear();
                hand_back(*unreachable, std::move(waiting));
                continue;
            }
            for (auto& q : group) {
                q.w->error = error;
                q.w->handle.resume();
            }
            if (error) {
                fail(error, std::move(self->queued_));
                self->queued_.clear();
            }
        }
        self->flushing_ = false;
    }

    registry::task<void> send(const std::map<std::string, std::optional<std::string>>& writes, std::uint64_t revision) {
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object();
        const std::uint64_t fence = election_->fence();
        if (fence) etcd_compare_created(w, election_->key(), fence);  // only while the writer key is still the one this registryd made
        w.key("success").begin_array();
        for (const auto& [key, value] : writes) {
            const std::string k = base64_encode(opts_.prefix + key);
            if (value) {
                w.begin_object().key("request_put").begin_object().key("key").string(k).key("value").string(
                    base64_encode(*value)).end_object().end_object();
            } else {
                w.begin_object().key("request_delete_range").begin_object().key("key").string(k).end_object().end_object();
            }
        }
        w.begin_object().key("request_put").begin_object()
            .key("key").string(base64_encode(opts_.prefix + std::string(etcd_revision_key)))
            .key("value").string(base64_encode(std::to_string(revision)))
            .end_object().end_object();
        w.end_array().end_object();
        dom::element doc = co_await gateway_->call("/v3/kv/txn", std::move(body));
        bool succeeded = false;
        if (fence && (doc["succeeded"].get(succeeded) != simdjson::SUCCESS || !succeeded)) {
            election_->depose("another registryd holds the writer key now");
            throw store_error("etcd: no longer the registry's writer: another registryd holds the writer key now");
        }
    }

    static void hand_back(const std::string& why, std::vector<queued> waiting) {
        for (auto& q : waiting) {
            q.w->error = std::make_exception_ptr(registry::store_unreachable(why, std::move(q.batch)));
            q.w->handle.resume();
        }
    }

    static void fail(std::exception_ptr error, std::vector<queued> waiting) {
        for (auto& q : waiting) {
            q.w->error = error;
            q.w->handle.resume();
        }
    }

    etcd_options opts_;
    std::shared_ptr<etcd_gateway> gateway_;
    std::vector<queued> queued_;
    bool flushing_ = false;
    bool stopped_ = false;
    std::exception_ptr poisoned_;
    std::uint64_t txns_ = 0;
    registry::async_scope flushes_;
    std::shared_ptr<etcd_election> election_;
    // The standby's reads.
    bool pin_ = false;
    std::uint64_t pinned_revision_ = 0;
};

etcd_store_port::etcd_store_port(boost::asio::io_context& io, etcd_options options)
    : impl_(std::make_shared<impl>(io, std::move(options))),
      follower_(std::make_unique<etcd_follower>(io, impl_->gateway())),
      probe_(impl_->make_probe(io)) {
    probe_->start();
}

etcd_store_port::~etcd_store_port() { stop(); }

store_health etcd_store_port::health() const {
    store_health h = probe_->health();
    const etcd_election& e = impl_->election();
    if (e.campaigning()) h.detail += std::string(h.detail.empty() ? "" : ", ") + (e.fence() != 0 ? "writer" : "standby");
    return h;
}

registry::task<std::uint64_t> etcd_store_port::load(std::string prefix, registry::store_visitor each) {
    return impl_->load(std::move(prefix), std::move(each));
}

registry::task<void> etcd_store_port::commit(registry::store_batch batch) { return impl_->commit(std::move(batch)); }

registry::task<bool> etcd_store_port::advertise(std::string holder) {
    return impl_->election().advertise(std::move(holder));
}

void etcd_store_port::campaign(std::string holder, std::function<void()> elected,
                               std::function<void(std::string why, bool was_writer)> ended,
                               std::function<void(std::string writer)> standing_by) {
    impl_->election().campaign(std::move(holder), std::move(elected), std::move(ended), std::move(standing_by));
}

registry::task<void> etcd_store_port::resign() { return impl_->election().resign(); }

void etcd_store_port::stop() {
    impl_->stop();
    follower_->stop();
    probe_->stop();
}

std::uint64_t etcd_store_port::fsyncs() const noexcept { return impl_->txns(); }

void etcd_store_port::pin_loads() { impl_->pin_loads(); }

std::uint64_t etcd_store_port::pinned_revision() const noexcept { return impl_->pinned_revision(); }

std::uint64_t etcd_store_port::unpin_loads() { return impl_->unpin_loads(); }

void etcd_store_port::stop_following() { follower_->stop_following(); }

void etcd_store_port::follow(std::uint64_t after, std::function<void(etcd_txn_seen)> each,
                             std::function<void(std::string why)> lost) {
    follower_->follow(after, std::move(each), std::move(lost));
}

registry::task<registry::result<void>> etcd_store_port::read_barrier() { return follower_->read_barrier(); }

}  // namespace registryd
