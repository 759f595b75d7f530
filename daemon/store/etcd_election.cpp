#include "store/etcd_election.hpp"

#include "observability/log.hpp"
#include "store/base64.hpp"

#include "codec/json_writer.hpp"

#include <utility>

namespace registryd {

namespace {

namespace dom = simdjson::dom;
using registry::store_error;

// How often a standby looks whether the writer key is gone.
constexpr std::chrono::milliseconds standby_poll{500};

}  // namespace

etcd_election::etcd_election(boost::asio::io_context& io, std::shared_ptr<etcd_gateway> gateway)
    : gateway_(std::move(gateway)),
      clock_(io),
      key_(base64_encode(gateway_->options().prefix + std::string(etcd_writer_key))) {
    running_.on_error([](std::exception_ptr) {});  // only operation_cancelled escapes, at stop
}

void etcd_election::campaign(std::string holder, std::function<void()> elected,
                             std::function<void(std::string, bool)> ended, std::function<void(std::string)> standing_by) {
    campaigning_ = true;
    holder_ = std::move(holder);
    elected_ = std::move(elected);
    ended_ = std::move(ended);
    standing_by_ = std::move(standing_by);
    running_.spawn(stand(shared_from_this()));
}

registry::task<bool> etcd_election::advertise(std::string holder) {
    if (!fence_ || deposed_why_) co_return false;
    dom::element doc = co_await put_key(fence_, holder);
    bool succeeded = false;
    if (doc["succeeded"].get(succeeded) != simdjson::SUCCESS || !succeeded) co_return false;
    holder_ = std::move(holder);
    co_return true;
}

registry::task<void> etcd_election::resign() {
    if (lease_id_.empty() || deposed_why_) co_return;
    std::string body;
    registry::detail::json_writer w(body);
    w.begin_object().key("ID").string(lease_id_).end_object();
    try {
        co_await gateway_->call("/v3/lease/revoke", std::move(body));
        log::info("resigned as the registry's writer", {{"holder", holder_}});
    } catch (const store_error& e) {
        log::warn("could not revoke the writer lease; a standby takes over when it runs out",
                  {{"error", e.what()},
                   {"ttl_seconds", static_cast<std::int64_t>(gateway_->options().writer_lease_ttl.count())}});
    }
}

void etcd_election::stop() { stop_.request_stop(); }

void etcd_election::depose(const std::string& why) {
    if (deposed_why_) return;
    deposed_why_ = why;
    end(why, true);
}

void etcd_election::end(const std::string& why, bool was_writer) {
    if (auto ended = std::exchange(ended_, nullptr)) ended(why, was_writer);
}

// Stands by until the writer key is free, takes it under a lease of our
// own, then keeps that lease alive for as long as this registryd runs.
registry::task<void> etcd_election::stand(std::shared_ptr<etcd_election> self) {
    std::string seen;  // the holder last logged
    bool asked = false;
    while (!self->stop_.stop_requested()) {
        try {
            auto holder = co_await self->holder_now();
            asked = true;
            if (!holder) {
                if (co_await self->take()) break;
                holder = co_await self->holder_now();
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
        std::stop_token stop = self->stop_.get_token();
        const registry::time_point next = self->clock_.now() + standby_poll;
        if (!co_await self->clock_.sleep_until(next, stop)) co_return;
    }
    if (self->stop_.stop_requested()) co_return;
    log::info("elected the registry's writer", {{"holder", self->holder_}, {"fence_revision", self->fence_}});
    self->elected_();
    co_await keep(self);
}

// The writer key's holder, or nullopt when there is none.
registry::task<std::optional<std::string>> etcd_election::holder_now() {
    std::string body;
    registry::detail::json_writer w(body);
    w.begin_object().key("key").string(key_).end_object();
    dom::element doc = co_await gateway_->call("/v3/kv/range", std::move(body));
    dom::array kvs;
    if (doc["kvs"].get(kvs) != simdjson::SUCCESS || kvs.size() == 0) co_return std::nullopt;
    std::string_view v64;
    if ((*kvs.begin())["value"].get(v64) != simdjson::SUCCESS) co_return std::string();
    co_return base64_decode(v64).value_or(std::string());
}

// A lease, then the writer key under it if nobody made it meanwhile; true
// (and fence_ set) when it is ours.
registry::task<bool> etcd_election::take() {
    const auto ttl = gateway_->options().writer_lease_ttl;
    // A lease of our own may have run out while the key was taken: an old one is replaced.
    if (!lease_id_.empty() && clock_.now() - lease_granted_ >= ttl / 2) lease_id_.clear();
    if (lease_id_.empty()) {
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object().key("TTL").number(static_cast<std::uint64_t>(ttl.count())).end_object();
        dom::element doc = co_await gateway_->call("/v3/lease/grant", std::move(body));
        lease_id_ = std::string(etcd_field(doc, "ID"));
        lease_granted_ = clock_.now();
    }
    dom::element doc = co_await put_key(0, holder_);
    bool succeeded = false;
    if (doc["succeeded"].get(succeeded) != simdjson::SUCCESS || !succeeded) co_return false;
    dom::element header;
    if (doc["header"].get(header) != simdjson::SUCCESS) throw store_error("etcd: no header in a txn's answer");
    fence_ = etcd_number(etcd_field(header, "revision"));  // the key was created by this txn
    co_return true;
}

// Puts `value` in the writer key under our lease if the key's create revision
// is `created` (0: if there is no such key); etcd's answer.
registry::task<dom::element> etcd_election::put_key(std::uint64_t created, const std::string& value) {
    std::string body;
    registry::detail::json_writer w(body);
    w.begin_object();
    etcd_compare_created(w, key_, created);
    w.key("success").begin_array()
        .begin_object().key("request_put").begin_object()
        .key("key").string(key_).key("value").string(base64_encode(value)).key("lease").string(lease_id_)
        .end_object().end_object()
        .end_array()
        .end_object();
    co_return co_await gateway_->call("/v3/kv/txn", std::move(body));
}

// Renews the writer lease every third of its TTL; deposes this writer when
// etcd says the lease is gone. An etcd that cannot be reached deposes nobody:
// writes wait (store_unreachable) and, once it is back, either the lease is
// still ours (etcd extends leases when it regains a leader) and they go
// through, or a standby took over and the fence refuses them.
registry::task<void> etcd_election::keep(std::shared_ptr<etcd_election> self) {
    const auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(self->gateway_->options().writer_lease_ttl);
    while (!self->deposed_why_) {
        std::stop_token stop = self->stop_.get_token();
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

}  // namespace registryd
