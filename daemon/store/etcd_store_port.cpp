#include "store/etcd_store_port.hpp"

#include "engine/engine_http.hpp"
#include "observability/log.hpp"
#include "runtime/asio_clock.hpp"
#include "store/base64.hpp"
#include "store/etcd_watch.hpp"

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

constexpr std::string_view revision_key = "meta/revision";
constexpr std::string_view writer_key = "meta/writer";
// How often a standby looks whether the writer key is gone.
constexpr std::chrono::milliseconds standby_poll{500};
// How soon a broken watch is tried again.
constexpr std::chrono::milliseconds retry_interval{500};
constexpr std::size_t range_page = 1000;
// etcd's default --max-txn-ops: a group of batches is split to fit (a single
// batch beyond it is sent whole and refused by an etcd that keeps the default).
constexpr std::size_t max_txn_ops = 128;

// The first key after every key that starts with `prefix` (etcd's range_end).
std::string prefix_end(std::string prefix) {
    while (!prefix.empty()) {
        if (static_cast<unsigned char>(prefix.back()) < 0xff) {
            prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
            return prefix;
        }
        prefix.pop_back();
    }
    return std::string(1, '\0');  // every key
}

std::uint64_t to_u64(std::string_view s) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size()) throw store_error("etcd: not a number: '" + std::string(s) + "'");
    return v;
}

std::string tcp_uri(const std::string& endpoint) {
    if (endpoint.starts_with("http://")) return "tcp://" + endpoint.substr(7);
    if (endpoint.starts_with("https://")) return "tcp://" + endpoint.substr(8);
    return endpoint;  // config validation allows http:// and https:// only
}

// etcd could not be asked, or could not answer (no endpoint reachable, no
// answer within the timeout, HTTP 5xx: no leader, too busy): the batches are
// handed back to the registry as store_unreachable, and the store stays usable.
class etcd_unreachable : public store_error {
public:
    using store_error::store_error;
};

// A txn's "compare" array with one condition: the key (base64) was created at
// `create_revision` (0: the key does not exist).
void compare_created_at(registry::detail::json_writer& w, const std::string& key, std::uint64_t create_revision) {
    w.key("compare").begin_array()
        .begin_object().key("key").string(key).key("result").string("EQUAL").key("target").string("CREATE")
        .key("create_revision").string(std::to_string(create_revision)).end_object()
        .end_array();
}

// Runs a task of the store's to its end without anybody awaiting it. The
// frame holds the store until the task is done (async_scope would touch
// itself after the task released the store's last reference).
struct detached {
    struct promise_type {
        detached get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept {}
    };
};

template <typename Keep>
detached run_detached([[maybe_unused]] std::shared_ptr<Keep> keep, registry::task<void> t) {
    try {
        co_await std::move(t);
    } catch (...) {  // the tasks catch what they can report; only operation_cancelled gets here, at stop
    }
}

// A commit suspended until its transaction is answered; in its coroutine frame.
struct waiter {
    std::coroutine_handle<> handle;
    std::exception_ptr error;
};

}  // namespace

class etcd_store_port::impl : public std::enable_shared_from_this<impl> {
public:
    impl(boost::asio::io_context& io, etcd_options o) : opts_(std::move(o)), clock_(io) {
        std::shared_ptr<boost::asio::ssl::context> tls;  // one for every https:// endpoint
        for (const auto& e : opts_.endpoints) {
            auto endpoint = engine_endpoint::parse(tcp_uri(e));
            if (!endpoint) throw std::invalid_argument("etcd endpoint " + e + ": " + endpoint.err().message);
            http_client_options client;
            client.connect_timeout = opts_.dial_timeout;
            client.request_timeout = opts_.request_timeout;
            client.max_body_bytes = 64u << 20;
            client.peer_kind = "etcd";
            if (e.starts_with("https://")) {
                if (!tls) tls = make_etcd_tls_context(opts_.tls);
                client.tls = tls;
                client.tls_server_name = opts_.tls.server_name;
            }
            clients_.emplace_back(io, *endpoint, std::move(client));
        }
        flushes_.on_error([](std::exception_ptr) {});  // flush() catches what it can report
        election_.on_error([](std::exception_ptr) {});  // only operation_cancelled escapes, at stop
    }

    // Clients of their own for /healthz's probe, made the same way.
    std::unique_ptr<etcd_probe> make_probe(boost::asio::io_context& io) const {
        return std::make_unique<etcd_probe>(io, clients_, opts_.endpoints);
    }

    registry::task<std::uint64_t> load(std::string prefix, registry::store_visitor each) {
        const std::string from = opts_.prefix + prefix;
        const std::string end = prefix_end(from);
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
                    auto key = base64_decode(string_of(kv, "key"));
                    std::string_view v64;
                    auto value = kv["value"].get(v64) == simdjson::SUCCESS ? base64_decode(v64) : std::optional<std::string>{""};
                    if (!key || !value || !key->starts_with(opts_.prefix)) throw store_error("etcd: a key or value is not base64");
                    const std::string_view relative = std::string_view(*key).substr(opts_.prefix.size());
                    if (relative != revision_key) each(relative, *value);
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
        follow_stop_.request_stop();
        fail_barriers("etcd store: stopped");
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
            co_await call("/v3/lease/revoke", std::move(body));
            log::info("resigned as the registry's writer", {{"holder", holder_}});
        } catch (const store_error& e) {
            log::warn("could not revoke the writer lease; a standby takes over when it runs out",
                      {{"error", e.what()}, {"ttl_seconds", static_cast<std::int64_t>(opts_.writer_lease_ttl.count())}});
        }
    }

    // ------------------------------------------------- the standby's reads

    void pin_loads() { pin_ = true; }
    std::uint64_t pinned_revision() const noexcept { return pinned_revision_; }
    std::uint64_t unpin_loads() {
        pin_ = false;
        return std::exchange(pinned_revision_, 0);
    }

    void stop_following() {
        if (!following_) return;
        lost_ = nullptr;  // no one to tell: the daemon asked
        following_ = false;
        follow_stop_.request_stop();
        fail_barriers("stopped following the writer's transactions");
    }

    bool elected() const noexcept { return fence_ != 0; }
    bool campaigning() const noexcept { return campaigning_; }

    void follow(std::uint64_t after, std::function<void(etcd_txn_seen)> each, std::function<void(std::string)> lost) {
        if (stopped_ || following_) return;
        following_ = true;  // again after `lost`: the daemon loaded the registry again
        follow_stop_ = std::stop_source{};
        lost_why_.reset();
        applied_ = after;
        each_ = std::move(each);
        lost_ = std::move(lost);
        run_detached(shared_from_this(), follow_loop(shared_from_this()));
    }

    registry::task<registry::result<void>> read_barrier() {
        auto self = shared_from_this();  // the port may go while this waits
        if (stopped_) co_return registry::fail(registry::errc::unavailable, "etcd store: stopped");
        std::shared_ptr<barrier_round> round = join_round();
        co_await round_awaiter{*round};
        if (round->error) {
            co_return registry::fail(registry::errc::unavailable,
                                     "read barrier: etcd cannot say what the writer committed: " + *round->error);
        }
        const std::uint64_t target = round->revision;
        if (target <= applied_) co_return registry::result<void>{};  // also: no transaction yet (0)
        if (stopped_) co_return registry::fail(registry::errc::unavailable, "etcd store: stopped");
        if (!following_) {
            co_return registry::fail(registry::errc::unavailable,
                                     "read barrier: not following the writer's transactions" +
                                         (lost_why_ ? ": " + *lost_why_ : std::string()));
        }
        auto wait = std::make_shared<apply_wait>();
        applies_.emplace(target, wait);
        const registry::time_point deadline = clock_.now() + opts_.request_timeout;
        run_detached(self, expire(self, wait, target, deadline));
        co_await apply_awaiter{*wait};
        if (!wait->failed.empty()) co_return registry::fail(registry::errc::unavailable, "read barrier: " + wait->failed);
        co_return registry::result<void>{};
    }

private:
    struct queued {
        registry::store_batch batch;
        waiter* w;
    };

    static std::string_view string_of(dom::element e, const char* field) {
        std::string_view s;
        if (e[field].get(s) != simdjson::SUCCESS) throw store_error(std::string("etcd: no '") + field + "' in its answer");
        return s;
    }

    // POSTs to the first endpoint that answers; the answer's JSON, or store_error.
    registry::task<dom::element> call(std::string target, std::string body) {
        std::string problem;
        for (std::size_t tried = 0; tried < clients_.size(); ++tried) {
            const std::size_t i = (current_ + tried) % clients_.size();
            http_request req{"POST", target, body, "application/json", false};
            auto r = co_await clients_[i].request(std::move(req));
            if (!r) {
                problem = opts_.endpoints[i] + ": " + r.err().message;
                continue;
            }
            current_ = i;
            dom::element doc;
            if (parser_.parse(r->body).get(doc) != simdjson::SUCCESS) {
                throw store_error("etcd " + opts_.endpoints[i] + target + ": HTTP " + std::to_string(r->status) +
                                  " with a body that is not JSON");
            }
            if (r->status != 200) {
                std::string_view message;
                if (doc["message"].get(message) != simdjson::SUCCESS) message = "no message";
                std::string what = "etcd " + opts_.endpoints[i] + target + ": HTTP " + std::to_string(r->status) + ": " +
                                   std::string(message);
                if (r->status >= 500) throw etcd_unreachable(what);
                throw store_error(what);
            }
            co_return doc;
        }
        throw etcd_unreachable("etcd unreachable: " + problem);
    }

    // A range of load(): after pin_loads(), the first one pins the revision
    // (its answer's), and a pinned one that etcd compacted away says so.
    registry::task<dom::element> pinned_range(std::string body) {
        const std::uint64_t pinned = pinned_revision_;
        dom::element doc;
        try {
            doc = co_await call("/v3/kv/range", std::move(body));
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
            pinned_revision_ = to_u64(string_of(header, "revision"));
        }
        co_return doc;
    }

    registry::task<std::uint64_t> stored_revision() {
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object().key("key").string(base64_encode(opts_.prefix + std::string(revision_key)));
        if (pinned_revision_ > 0) w.key("revision").string(std::to_string(pinned_revision_));
        w.end_object();
        dom::element doc = co_await pinned_range(std::move(body));
        dom::array kvs;
        if (doc["kvs"].get(kvs) != simdjson::SUCCESS || kvs.size() == 0) co_return 0;
        auto value = base64_decode(string_of(*kvs.begin(), "value"));
        if (!value) throw store_error("etcd: the revision is not base64");
        co_return to_u64(*value);
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
            .key("key").string(base64_encode(opts_.prefix + std::string(revision_key)))
            .key("value").string(base64_encode(std::to_string(revision)))
            .end_object().end_object();
        w.end_array().end_object();
        dom::element doc = co_await call("/v3/kv/txn", std::move(body));
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
        dom::element doc = co_await call("/v3/kv/range", std::move(body));
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
            dom::element doc = co_await call("/v3/lease/grant", std::move(body));
            lease_id_ = std::string(string_of(doc, "ID"));
            lease_granted_ = clock_.now();
        }
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object();
        compare_created_at(w, writer_key_, 0);
        w.key("success").begin_array()
            .begin_object().key("request_put").begin_object()
            .key("key").string(writer_key_).key("value").string(base64_encode(holder_)).key("lease").string(lease_id_)
            .end_object().end_object()
            .end_array()
            .end_object();
        dom::element doc = co_await call("/v3/kv/txn", std::move(body));
        bool succeeded = false;
        if (doc["succeeded"].get(succeeded) != simdjson::SUCCESS || !succeeded) co_return false;
        dom::element header;
        if (doc["header"].get(header) != simdjson::SUCCESS) throw store_error("etcd: no header in a txn's answer");
        fence_ = to_u64(string_of(header, "revision"));  // the key was created by this txn
        co_return true;
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
                dom::element doc = co_await self->call("/v3/lease/keepalive", std::move(body));
                std::string_view left;  // absent: 0, the lease is gone
                dom::element result;
                if (doc["result"].get(result) != simdjson::SUCCESS || result["TTL"].get(left) != simdjson::SUCCESS) left = "0";
                if (to_u64(left) == 0) lost = "the writer lease ran out in etcd";
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

    // ------------------------------------- following the writer through etcd

    bool follow_stopped() const noexcept { return stopped_ || follow_stop_.stop_requested() || !following_; }

    // Watches from the revision after the last one applied, again and again
    // until following ends; an outage is logged once, and its end.
    static registry::task<void> follow_loop(std::shared_ptr<impl> self) {
        std::string problem;  // the one last logged, empty while following
        log::info("following the registry's writer through etcd", {{"from_revision", self->applied_ + 1}});
        while (!self->follow_stopped()) {
            std::optional<std::string> broke;
            try {
                broke = co_await self->watch(problem);
            } catch (const registry::operation_cancelled&) {
                co_return;
            } catch (const std::exception& e) {
                broke = std::string("etcd watch: ") + e.what();
            }
            if (!broke || self->follow_stopped()) co_return;
            if (problem.empty()) {  // once per outage; what it turns into after that, at debug level
                problem = *broke;
                log::warn("cannot follow the registry's writer through etcd; retrying every 500 ms",
                          {{"error", problem}, {"from_revision", self->applied_ + 1}});
            } else if (*broke != problem) {
                problem = *broke;
                log::debug("still cannot follow the registry's writer through etcd",
                           {{"error", problem}, {"from_revision", self->applied_ + 1}});
            }
            std::stop_token stop = self->follow_stop_.get_token();
            const registry::time_point next = self->clock_.now() + retry_interval;
            if (!co_await self->clock_.sleep_until(next, stop)) co_return;
        }
    }

    // One watch stream, from the first endpoint that takes it. Why it ended
    // (to retry), or nullopt when following ended (stopped, lost).
    registry::task<std::optional<std::string>> watch(std::string& problem) {
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object().key("create_request").begin_object()
            .key("key").string(base64_encode(opts_.prefix))
            .key("range_end").string(base64_encode(prefix_end(opts_.prefix)))
            .key("start_revision").string(std::to_string(applied_ + 1))
            .end_object().end_object();
        std::string tried_problems;
        for (std::size_t tried = 0; tried < clients_.size(); ++tried) {
            const std::size_t i = (current_ + tried) % clients_.size();
            std::stop_token stop = follow_stop_.get_token();
            // Named locals: GCC 12 mishandles temporaries in a co_await expression.
            http_request req{"POST", "/v3/watch", body, "application/json", false};
            auto stream = co_await clients_[i].open(std::move(req), stop);
            if (!stream) {
                tried_problems += (tried_problems.empty() ? "" : "; ") + opts_.endpoints[i] + ": " + stream.err().message;
                continue;
            }
            if (stream->status() != 200) {
                auto answer = co_await stream->read_all(opts_.request_timeout, stop);
                tried_problems += (tried_problems.empty() ? "" : "; ") + opts_.endpoints[i] + "/v3/watch: HTTP " +
                                  std::to_string(stream->status()) +
                                  (answer ? ": " + answer->substr(0, 200) : std::string());
                continue;
            }
            current_ = i;
            std::string endpoint = opts_.endpoints[i];
            http_stream opened = std::move(*stream);
            co_return co_await read_watch(std::move(opened), std::move(endpoint), problem);
        }
        co_return "etcd unreachable: " + tried_problems;
    }

    registry::task<std::optional<std::string>> read_watch(http_stream stream, std::string endpoint, std::string& problem) {
        const std::size_t limit = clients_.front().options().max_body_bytes;
        json_object_splitter split(limit);
        for (;;) {
            std::stop_token stop = follow_stop_.get_token();
            auto piece = co_await stream.next(stop);
            if (follow_stopped()) co_return std::nullopt;
            if (!piece) co_return piece.err().message;
            if (!*piece) co_return endpoint + ": etcd ended the watch stream";
            if (!split.feed(**piece)) {
                lose("a watch message from etcd is larger than " + std::to_string(limit) + " bytes");
                co_return std::nullopt;
            }
            for (;;) {
                etcd_watch_message m;
                try {
                    auto object = split.next();
                    if (!object) break;
                    m = parse_watch_message(watch_parser_, *object, opts_.prefix);
                } catch (const store_error& e) {
                    co_return endpoint + ": " + e.what();
                }
                if (m.error) co_return endpoint + "/v3/watch: " + *m.error;
                if (m.compact_revision > 0) {
                    lose("etcd compacted its history up to revision " + std::to_string(m.compact_revision) +
                         ", past revision " + std::to_string(applied_ + 1) + " that following needs next");
                    co_return std::nullopt;
                }
                if (m.canceled) co_return endpoint + ": etcd canceled the watch: " + m.cancel_reason;
                if (m.created && !problem.empty()) {
                    problem.clear();
                    log::info("following the registry's writer through etcd again", {{"from_revision", applied_ + 1}});
                }
                for (auto& txn : m.revisions) {
                    if (!apply(std::move(txn))) co_return std::nullopt;
                }
            }
        }
    }

    // Hands one revision to `each` (none twice); false when following ended.
    bool apply(etcd_txn_seen txn) {
        if (txn.revision <= applied_) return true;
        const std::uint64_t revision = txn.revision;
        if (!txn.mutations.empty()) {
            try {
                each_(std::move(txn));
            } catch (const std::exception& e) {
                lose(std::string("applying etcd revision ") + std::to_string(revision) + " failed: " + e.what());
                return false;
            }
        }
        if (follow_stopped()) return false;
        applied_ = revision;
        // Waiters resumed here may wait again: take them one at a time.
        while (!applies_.empty() && applies_.begin()->first <= applied_) {
            auto wait = std::move(applies_.begin()->second);
            applies_.erase(applies_.begin());
            wait->finish({});
        }
        return true;
    }

    // Following ends for good: the daemon is told once.
    void lose(const std::string& why) {
        log::warn("stopped following the registry's writer through etcd", {{"error", why}});
        lost_why_ = why;
        following_ = false;
        follow_stop_.request_stop();
        fail_barriers("not following the writer's transactions: " + why);
        if (auto lost = std::exchange(lost_, nullptr)) lost(why);
    }

    // ------------------------------------------------------ read barriers

    // One linearizable read of the revision key, shared by the barriers
    // that joined it before it was sent.
    struct barrier_round {
        std::vector<std::coroutine_handle<>> waiters;
        bool done = false;
        std::uint64_t revision = 0;  // the revision key's mod_revision; 0: none
        std::optional<std::string> error;
    };
    struct round_awaiter {
        barrier_round& round;
        bool await_ready() const noexcept { return round.done; }
        void await_suspend(std::coroutine_handle<> h) { round.waiters.push_back(h); }
        void await_resume() const noexcept {}
    };

    // A barrier waiting for following to reach a revision.
    struct apply_wait {
        std::coroutine_handle<> handle;
        bool done = false;
        std::string failed;  // why, when it did not get there
        std::stop_source timer;
        void finish(std::string why) {
            if (done) return;
            done = true;
            failed = std::move(why);
            timer.request_stop();
            if (handle) handle.resume();
        }
    };
    struct apply_awaiter {
        apply_wait& wait;
        bool await_ready() const noexcept { return wait.done; }
        void await_suspend(std::coroutine_handle<> h) noexcept { wait.handle = h; }
        void await_resume() const noexcept {}
    };

    // The round a barrier called now waits for: the one in flight began
    // before the call, so it proves nothing about writes acknowledged
    // before it; the barrier joins the next one (sent when that one ends).
    std::shared_ptr<barrier_round> join_round() {
        if (!round_running_) {
            auto round = std::make_shared<barrier_round>();
            round_running_ = round;
            run_detached(shared_from_this(), run_round(shared_from_this(), round));
            return round;
        }
        if (!round_next_) round_next_ = std::make_shared<barrier_round>();
        return round_next_;
    }

    static registry::task<void> run_round(std::shared_ptr<impl> self, std::shared_ptr<barrier_round> round) {
        try {
            round->revision = co_await self->writer_revision();
        } catch (const std::exception& e) {
            round->error = e.what();
        }
        self->round_running_ = std::exchange(self->round_next_, nullptr);
        if (self->round_running_) run_detached(self, run_round(self, self->round_running_));
        round->done = true;
        for (auto h : std::exchange(round->waiters, {})) h.resume();
    }

    // The etcd revision of the writer's last transaction (linearizable).
    registry::task<std::uint64_t> writer_revision() {
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object()
            .key("key").string(base64_encode(opts_.prefix + std::string(revision_key)))
            .key("keys_only").boolean(true)
            .end_object();
        dom::element doc = co_await call("/v3/kv/range", std::move(body));
        dom::array kvs;
        if (doc["kvs"].get(kvs) != simdjson::SUCCESS || kvs.size() == 0) co_return 0;
        co_return to_u64(string_of(*kvs.begin(), "mod_revision"));
    }

    // Fails a barrier still waiting at `deadline`.
    static registry::task<void> expire(std::shared_ptr<impl> self, std::shared_ptr<apply_wait> wait,
                                       std::uint64_t target, registry::time_point deadline) {
        std::stop_token stop = wait->timer.get_token();
        if (!co_await self->clock_.sleep_until(deadline, stop) || wait->done) co_return;
        for (auto [it, end] = self->applies_.equal_range(target); it != end; ++it) {
            if (it->second == wait) {
                self->applies_.erase(it);
                break;
            }
        }
        wait->finish("following the writer's transactions has not reached etcd revision " + std::to_string(target) +
                     " within " + std::to_string(self->opts_.request_timeout.count()) + " ms (it is at " +
                     std::to_string(self->applied_) + ")");
    }

    void fail_barriers(const std::string& why) {
        auto waits = std::exchange(applies_, {});
        for (auto& [target, wait] : waits) wait->finish(why);
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
    std::vector<engine_http_client> clients_;
    std::size_t current_ = 0;
    dom::parser parser_;  // the io thread's; an element is read before the next call
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
    std::string writer_key_ = base64_encode(opts_.prefix + std::string(writer_key));  // as etcd's JSON wants it
    std::string lease_id_;  // etcd's decimal lease id, empty before the first grant
    registry::time_point lease_granted_{};
    std::uint64_t fence_ = 0;  // the writer key's create revision once ours; 0: not the writer
    std::optional<std::string> deposed_why_;
    std::stop_source election_stop_;
    registry::async_scope election_;
    // The standby's reads.
    bool pin_ = false;
    std::uint64_t pinned_revision_ = 0;
    bool following_ = false;
    std::uint64_t applied_ = 0;  // the last etcd revision handed to each_ (or skipped: meta/ only)
    std::function<void(etcd_txn_seen)> each_;
    std::function<void(std::string)> lost_;
    std::optional<std::string> lost_why_;
    std::stop_source follow_stop_;
    dom::parser watch_parser_;  // the watch's own: its messages are read across suspensions of call()
    std::shared_ptr<barrier_round> round_running_, round_next_;
    std::multimap<std::uint64_t, std::shared_ptr<apply_wait>> applies_;  // by the revision they wait for
};

etcd_store_port::etcd_store_port(boost::asio::io_context& io, etcd_options options)
    : impl_(std::make_shared<impl>(io, std::move(options))), probe_(impl_->make_probe(io)) {
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

void etcd_store_port::campaign(std::string holder, std::function<void()> elected,
                               std::function<void(std::string why, bool was_writer)> ended,
                               std::function<void(std::string writer)> standing_by) {
    impl_->campaign(std::move(holder), std::move(elected), std::move(ended), std::move(standing_by));
}

registry::task<void> etcd_store_port::resign() { return impl_->resign(); }

void etcd_store_port::stop() {
    impl_->stop();
    probe_->stop();
}

std::uint64_t etcd_store_port::fsyncs() const noexcept { return impl_->txns(); }

void etcd_store_port::pin_loads() { impl_->pin_loads(); }

std::uint64_t etcd_store_port::pinned_revision() const noexcept { return impl_->pinned_revision(); }

std::uint64_t etcd_store_port::unpin_loads() { return impl_->unpin_loads(); }

void etcd_store_port::stop_following() { impl_->stop_following(); }

void etcd_store_port::follow(std::uint64_t after, std::function<void(etcd_txn_seen)> each,
                             std::function<void(std::string why)> lost) {
    impl_->follow(after, std::move(each), std::move(lost));
}

registry::task<registry::result<void>> etcd_store_port::read_barrier() { return impl_->read_barrier(); }

}  // namespace registryd
