#include "store/etcd_store_port.hpp"

#include "engine/engine_http.hpp"
#include "observability/log.hpp"
#include "runtime/asio_clock.hpp"
#include "store/base64.hpp"

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

// How often a standby looks whether the writer key is gone.
constexpr std::chrono::milliseconds standby_poll{500};
constexpr std::size_t range_page = 1000;
// etcd's default --max-txn-ops: a group of batches is split to fit (a single
// batch beyond it is sent whole and refused by an etcd that keeps the default).
constexpr std::size_t max_txn_ops = 128;

// A txn's "compare" array with one condition: the key (base64) was created at
// `create_revision` (0: the key does not exist).
void compare_created_at(registry::detail::json_writer& w, const std::string& key, std::uint64_t create_revision) {
    w.key("compare").begin_array()
        .begin_object().key("key").string(key).key("result").string("EQUAL").key("target").string("CREATE")
        .key("create_revision").string(std::to_string(create_revision)).end_object()
        .end_array();
}

// A commit suspended until its transaction is answered; in its coroutine frame.
struct waiter {
    std::coroutine_handle<> handle;
    std::exception_ptr error;
};

}  // namespace

class etcd_store_port::impl : public std::enable_shared_from_this<impl> {
public:
    impl(boost::asio::io_context& io, etcd_options o)
        : opts_(std::move(o)), gateway_(std::make_shared<etcd_gateway>(io, opts_)), clock_(io) {
        flushes_.on_error([](std::exception_ptr) {});  // flush() catches what it can report
        election_.on_error([](std::exception_ptr) {});  // only operation_cancelled escapes, at stop
    }

    std::unique_ptr<etcd_probe> make_probe(boost::asio::io_context& io) const { return gateway_->make_probe(io); }
    const std::shared_ptr<etcd_gateway>& gateway() const noexcept { return gateway_; }

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
        // A standby's registry refuses writes itself (not_writer); nothing unfenced reaches etcd anyway.
        if (campaigning_ && fence_ == 0) throw store_error("etcd store: a standby does not write");
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
        election_stop_.request_stop();
        fail(std::make_exception_ptr(store_error("etcd store: stopped")), std::move(queued_));
        queued_.clear();
    }

    std::uint64_t txns() const noexcept { return txns_; }

    // ------------------------------------------------------- the writer role

    void campaign(std::string holder, std::function<void()> elected, std::function<void(std::string, bool)> ended,
                  std::function<void(std::string)> standing_by) {
        campaigning_ = true;
        holder_ = std::move(holder);
        elected_ = std::move(elected);
        ended_ = std::move(ended);
        standing_by_ = std::move(standing_by);
        election_.spawn(stand(shared_from_this()));
    }

    registry::task<void> resign() {
        if (lease_id_.empty() || deposed_why_) co_return;
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object().key("ID").string(lease_id_).end_object();
        try {
            co_await gateway_->call("/v3/lease/revoke", std::move(body));
            log::info("resigned as the registry's writer", {{"holder", holder_}});
        } catch (const store_error& e) {
            log::warn("could not revoke the writer lease; a standby takes over when it runs out",
                      {{"error", e.what()}, {"ttl_seconds", static_cast<std::int64_t>(opts_.writer_lease_ttl.count())}});
        }
    }

    // The writer key's value becomes `holder`, under the same lease, if the
    // key is still the one this registryd made.
    registry::task<bool> advertise(std::string holder) {
        if (!fence_ || deposed_why_) co_return false;
        dom::element doc = co_await put_writer_key(fence_, holder);
        bool succeeded = false;
        if (doc["succeeded"].get(succeeded) != simdjson::SUCCESS || !succeeded) co_return false;
        holder_ = std::move(holder);
        co_return true;
    }

    // ------------------------------------------------- the standby's reads

    void pin_loads() { pin_ = true; }
    std::uint64_t pinned_revision() const noexcept { return pinned_revision_; }
    std::uint64_t unpin_loads() {
        pin_ = false;
        return std::exchange(pinned_revision_, 0);
    }

    bool elected() const noexcept { return fence_ != 0; }
    bool campaigning() const noexcept { return campaigning_; }

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
        if (fence_) compare_created_at(w, writer_key_, fence_);  // only while the writer key is still the one this registryd made
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
        if (fence_ && (doc["succeeded"].get(succeeded) != simdjson::SUCCESS || !succeeded)) {
            depose("another registryd holds the writer key now");
            std::rethrow_exception(poisoned_);
        }
    }

    // Stands by until the writer key is free, takes it under a lease of our
    // own, then keeps that lease alive for as long as this registryd runs.
    static registry::task<void> stand(std::shared_ptr<impl> self) {
        std::string seen;  // the holder last logged
        bool asked = false;
        while (!self->election_stop_.stop_requested()) {
            try {
                auto holder = co_await self->writer();
                asked = true;
                if (!holder) {
                    if (co_await self->take()) break;
                    holder = co_await self->writer();
                }
                if (holder && *holder != seen) {
                    seen = *holder;
                    log::info("standby: another registryd is the registry's writer", {{"writer", seen}});
                    if (self->standing_by_) self->standing_by_(seen);
                }
            } catch (const store_error& e) {
                if (!asked) {  // as a registryd on an unreachable store always did: exit at once, saying why
                    self->end(e.what(), false);
                    co_return;
                }
                if (seen != e.what()) {
                    seen = e.what();
                    log::warn("standby: etcd cannot be asked who writes", {{"error", seen}});
                }
            }
            // Named locals: GCC 12 mishandles temporaries in a co_await expression.
            std::stop_token stop = self->election_stop_.get_token();
            const registry::time_point next = self->clock_.now() + standby_poll;
            if (!co_await self->clock_.sleep_until(next, stop)) co_return;
        }
        if (self->election_stop_.stop_requested()) co_return;
        log::info("elected the registry's writer", {{"holder", self->holder_}, {"fence_revision", self->fence_}});
        self->elected_();
        co_await keep(self);
    }

    // The writer key's holder, or nullopt when there is none.
    registry::task<std::optional<std::string>> writer() {
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object().key("key").string(writer_key_).end_object();
        dom::element doc = co_await gateway_->call("/v3/kv/range", std::move(body));
        dom::array kvs;
        if (doc["kvs"].get(kvs) != simdjson::SUCCESS || kvs.size() == 0) co_return std::nullopt;
        std::string_view v64;
        if ((*kvs.begin())["value"].get(v64) != simdjson::SUCCESS) co_return std::string();
        co_return base64_decode(v64).value_or(std::string());
    }

    // A lease, then the writer key under it if nobody made it meanwhile;
    // true (and fence_ set) when it is ours.
    registry::task<bool> take() {
        // A lease of our own may have run out while the key was taken: an old one is replaced.
        if (!lease_id_.empty() && clock_.now() - lease_granted_ >= opts_.writer_lease_ttl / 2) lease_id_.clear();
        if (lease_id_.empty()) {
            std::string body;
            registry::detail::json_writer w(body);
            w.begin_object().key("TTL").number(static_cast<std::uint64_t>(opts_.writer_lease_ttl.count())).end_object();
            dom::element doc = co_await gateway_->call("/v3/lease/grant", std::move(body));
            lease_id_ = std::string(etcd_field(doc, "ID"));
            lease_granted_ = clock_.now();
        }
        dom::element doc = co_await put_writer_key(0, holder_);
        bool succeeded = false;
        if (doc["succeeded"].get(succeeded) != simdjson::SUCCESS || !succeeded) co_return false;
        dom::element header;
        if (doc["header"].get(header) != simdjson::SUCCESS) throw store_error("etcd: no header in a txn's answer");
        fence_ = etcd_number(etcd_field(header, "revision"));  // the key was created by this txn
        co_return true;
    }

    // Puts `value` in the writer key under our lease if the key's create
    // revision is `created` (0: if there is no such key); etcd's answer.
    registry::task<dom::element> put_writer_key(std::uint64_t created, const std::string& value) {
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object();
        compare_created_at(w, writer_key_, created);
        w.key("success").begin_array()
            .begin_object().key("request_put").begin_object()
            .key("key").string(writer_key_).key("value").string(base64_encode(value)).key("lease").string(lease_id_)
            .end_object().end_object()
            .end_array()
            .end_object();
        co_return co_await gateway_->call("/v3/kv/txn", std::move(body));
    }

    // Renews the writer lease every third of its TTL; deposes this writer
    // when etcd says the lease is gone. An etcd that cannot be reached
    // deposes nobody: writes wait (store_unreachable) and, once it is back,
    // either the lease is still ours (etcd extends leases when it regains a
    // leader) and they go through, or a standby took over and the fence
    // refuses them.
    static registry::task<void> keep(std::shared_ptr<impl> self) {
        const auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(self->opts_.writer_lease_ttl);
        while (!self->deposed_why_) {
            std::stop_token stop = self->election_stop_.get_token();
            const registry::time_point next = self->clock_.now() + ttl / 3;
            if (!co_await self->clock_.sleep_until(next, stop)) co_return;
            std::string body;
            registry::detail::json_writer w(body);
            w.begin_object().key("ID").string(self->lease_id_).end_object();
            std::optional<std::string> lost;
            try {
                dom::element doc = co_await self->gateway_->call("/v3/lease/keepalive", std::move(body));
                std::string_view left;  // absent: 0, the lease is gone
                dom::element result;
                if (doc["result"].get(result) != simdjson::SUCCESS || result["TTL"].get(left) != simdjson::SUCCESS) left = "0";
                if (etcd_number(left) == 0) lost = "the writer lease ran out in etcd";
            } catch (const etcd_unreachable&) {
                // renewed on a later round, or replaced: see above
            } catch (const store_error& e) {
                lost = std::string("etcd refused to renew the writer lease: ") + e.what();
            }
            if (lost) self->depose(*lost);
        }
    }

    // After this no commit succeeds; the daemon is told once.
    void depose(const std::string& why) {
        if (deposed_why_) return;
        deposed_why_ = why;
        poisoned_ = std::make_exception_ptr(store_error("etcd: no longer the registry's writer: " + why));
        end(why, true);
    }

    void end(const std::string& why, bool was_writer) {
        if (auto ended = std::exchange(ended_, nullptr)) ended(why, was_writer);
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
    // The writer role.
    asio_clock clock_;
    std::string holder_;
    std::function<void()> elected_;
    std::function<void(std::string, bool)> ended_;
    std::function<void(std::string)> standing_by_;
    bool campaigning_ = false;
    std::string writer_key_ = base64_encode(opts_.prefix + std::string(etcd_writer_key));  // as etcd's JSON wants it
    std::string lease_id_;  // etcd's decimal lease id, empty before the first grant
    registry::time_point lease_granted_{};
    std::uint64_t fence_ = 0;  // the writer key's create revision once ours; 0: not the writer
    std::optional<std::string> deposed_why_;
    std::stop_source election_stop_;
    registry::async_scope election_;
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
    if (impl_->campaigning()) h.detail += std::string(h.detail.empty() ? "" : ", ") + (impl_->elected() ? "writer" : "standby");
    return h;
}

registry::task<std::uint64_t> etcd_store_port::load(std::string prefix, registry::store_visitor each) {
    return impl_->load(std::move(prefix), std::move(each));
}

registry::task<void> etcd_store_port::commit(registry::store_batch batch) { return impl_->commit(std::move(batch)); }

registry::task<bool> etcd_store_port::advertise(std::string holder) { return impl_->advertise(std::move(holder)); }

void etcd_store_port::campaign(std::string holder, std::function<void()> elected,
                               std::function<void(std::string why, bool was_writer)> ended,
                               std::function<void(std::string writer)> standing_by) {
    impl_->campaign(std::move(holder), std::move(elected), std::move(ended), std::move(standing_by));
}

registry::task<void> etcd_store_port::resign() { return impl_->resign(); }

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
