#include "cluster/member_directory.hpp"

#include "observability/log.hpp"
#include "runtime/os_random.hpp"
#include "store/base64.hpp"

#include "codec/json_reader.hpp"
#include "codec/json_writer.hpp"

#include <registry/engine_declaration.hpp>

#include <algorithm>
#include <array>
#include <optional>
#include <span>
#include <stdexcept>
#include <utility>

namespace registryd {

namespace {

namespace dom = simdjson::dom;
using registry::store_error;
using registry::detail::decoder;
using registry::detail::path;
using registry::detail::read;

// How often a member whose name is held looks again, and how soon etcd is
// asked again after a failure.
constexpr std::chrono::milliseconds retry_pause{500};
constexpr std::size_t max_record_string = 1024;
constexpr std::size_t max_engines = 256;
constexpr std::size_t max_targets = 256;
constexpr std::size_t secret_bytes = 32;

bool read_engine(decoder& d, dom::element e, const path& at, member_record::engine& out) {
    dom::object obj;
    if (e.get_object().get(obj)) return d.fail(at, "must be an object");
    for (auto [key, value] : obj) {
        if (key == "name" && !read(d, value, at.member("name"), out.name)) return false;
        if (key == "capacity" && !read(d, value, at.member("capacity"), out.capacity)) return false;
    }
    if (out.name.empty()) return d.fail(at.member("name"), "is required");
    // What a configured engine's capacity may be (containers.engines).
    if (out.capacity == 0 || out.capacity > registry::max_engine_capacity) {
        return d.fail(at.member("capacity"), "must be 1-" + std::to_string(registry::max_engine_capacity));
    }
    return true;
}

bool read_engines(decoder& d, dom::element e, const path& at, std::vector<member_record::engine>& out) {
    dom::array items;
    if (e.get_array().get(items)) return d.fail(at, "must be an array");
    if (items.size() > max_engines) return d.fail(at, "must have at most " + std::to_string(max_engines) + " engines");
    std::size_t i = 0;
    for (dom::element item : items) {
        if (!read_engine(d, item, at.element(i++), out.emplace_back())) return false;
    }
    return true;
}

bool read_target(decoder& d, dom::element e, const path& at, member_record::target& out) {
    dom::object obj;
    if (e.get_object().get(obj)) return d.fail(at, "must be an object");
    for (auto [key, value] : obj) {
        const path field = at.member(key);
        const bool ok = key == "name"               ? read(d, value, field, out.name)
                        : key == "endpoint_address" ? read(d, value, field, out.endpoint_address)
                        : key == "prefix"           ? read(d, value, field, out.prefix)
                        : key == "host"             ? read(d, value, field, out.host)
                        : key == "ssh_user"         ? read(d, value, field, out.ssh_user)
                        : key == "ssh_port"         ? read(d, value, field, out.ssh_port)
                                                    : true;
        if (!ok) return false;
    }
    if (out.name.empty()) return d.fail(at.member("name"), "is required");
    // The deployer makes directories under it: only an absolute path.
    if (!out.prefix.starts_with('/')) return d.fail(at.member("prefix"), "must be an absolute path");
    if (out.host.empty()) return d.fail(at.member("host"), "is required");
    return true;
}

bool read_targets(decoder& d, dom::element e, const path& at, std::vector<member_record::target>& out) {
    dom::array items;
    if (e.get_array().get(items)) return d.fail(at, "must be an array");
    if (items.size() > max_targets) return d.fail(at, "must have at most " + std::to_string(max_targets) + " targets");
    std::size_t i = 0;
    for (dom::element item : items) {
        if (!read_target(d, item, at.element(i++), out.emplace_back())) return false;
    }
    return true;
}

bool read_record(decoder& d, dom::element e, member_record& r) {
    const path at;
    dom::object obj;
    if (e.get_object().get(obj)) return d.fail(at, "must be an object");
    for (auto [key, value] : obj) {
        const path field = at.member(key);
        const bool ok = key == "name"      ? read(d, value, field, r.name)
                        : key == "url"     ? read(d, value, field, r.url)
                        : key == "engines" ? read_engines(d, value, field, r.engines)
                        : key == "targets" ? read_targets(d, value, field, r.targets)
                        : key == "host"    ? read(d, value, field, r.host)
                        : key == "pid"     ? read(d, value, field, r.pid)
                                           : true;
        if (!ok) return false;
    }
    if (r.name.empty()) return d.fail(at.member("name"), "is required");
    return true;
}

std::string hex(std::span<const std::byte> bytes) {
    constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::byte b : bytes) {
        out += digits[std::to_integer<unsigned>(b) >> 4];
        out += digits[std::to_integer<unsigned>(b) & 0xf];
    }
    return out;
}

bool is_secret(std::string_view s) {
    return s.size() == 2 * secret_bytes &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A txn: `value` put at `key` (base64), under `lease` unless empty, if the
// key's create revision is `created` (0: if there is no such key); the key
// read otherwise.
std::string put_txn(const std::string& key, std::uint64_t created, std::string_view value, const std::string& lease) {
    std::string body;
    registry::detail::json_writer w(body);
    w.begin_object();
    etcd_compare_created(w, key, created);
    w.key("success").begin_array().begin_object().key("request_put").begin_object();
    w.key("key").string(key).key("value").string(base64_encode(value));
    if (!lease.empty()) w.key("lease").string(lease);
    w.end_object().end_object().end_array();
    w.key("failure").begin_array()
        .begin_object().key("request_range").begin_object().key("key").string(key).end_object().end_object()
        .end_array()
        .end_object();
    return body;
}

bool succeeded(dom::element txn) {
    bool yes = false;  // etcd's JSON leaves false out
    return txn["succeeded"].get(yes) == simdjson::SUCCESS && yes;
}

// The key a failed put_txn() read; nullopt when there is none.
std::optional<dom::element> read_back(dom::element txn) {
    dom::array responses, kvs;
    dom::element range;
    if (txn["responses"].get(responses) != simdjson::SUCCESS || responses.size() == 0) return std::nullopt;
    if ((*responses.begin())["response_range"].get(range) != simdjson::SUCCESS) return std::nullopt;
    if (range["kvs"].get(kvs) != simdjson::SUCCESS || kvs.size() == 0) return std::nullopt;
    return *kvs.begin();
}

// A key's value; "" when etcd left it out (empty) or it is not base64.
std::string value_of(dom::element kv) {
    std::string_view v64;
    if (kv["value"].get(v64) != simdjson::SUCCESS) return {};
    return base64_decode(v64).value_or(std::string());
}

}  // namespace

std::string encode_member_record(const member_record& r) {
    std::string out;
    registry::detail::json_writer w(out);
    w.begin_object().key("name").string(r.name).key("url").string(r.url).key("engines").begin_array();
    for (const auto& e : r.engines) {
        w.begin_object().key("name").string(e.name).key("capacity").number(e.capacity).end_object();
    }
    w.end_array().key("targets").begin_array();
    for (const auto& t : r.targets) {
        w.begin_object().key("name").string(t.name).key("endpoint_address").string(t.endpoint_address);
        w.key("prefix").string(t.prefix).key("host").string(t.host);
        if (!t.ssh_user.empty()) w.key("ssh_user").string(t.ssh_user);
        if (t.ssh_port != 0) w.key("ssh_port").number(t.ssh_port);
        w.end_object();
    }
    w.end_array().key("host").string(r.host).key("pid").number(r.pid).end_object();
    return out;
}

registry::result<member_record> decode_member_record(std::string_view json) {
    return registry::detail::decode_record<member_record>(json, [](decoder& d, dom::element root, member_record& r) {
        d.max_string = max_record_string;
        return read_record(d, root, r);
    });
}

std::shared_ptr<member_directory> member_directory::open(boost::asio::io_context& io, const etcd_options& options,
                                                         std::string member) {
    return std::make_shared<member_directory>(io, std::make_shared<etcd_gateway>(io, options), std::move(member),
                                              options.writer_lease_ttl);
}

member_directory::member_directory(boost::asio::io_context& io, std::shared_ptr<etcd_gateway> gateway,
                                   std::string member, std::chrono::seconds lease_ttl)
    : gateway_(std::move(gateway)),
      clock_(io),
      member_(std::move(member)),
      lease_ttl_(lease_ttl),
      key_(base64_encode(gateway_->options().prefix + std::string(etcd_members_prefix) + member_)) {
    running_.on_error([](std::exception_ptr) {});  // hold() catches etcd's failures; nothing else is expected
}

registry::task<registry::result<std::string>> member_directory::cluster_secret() {
    std::array<std::byte, secret_bytes> bytes;
    os_random().fill(bytes);
    const std::string fresh = hex(bytes);
    const std::string key = gateway_->options().prefix + std::string(etcd_cluster_secret_key);
    std::string secret;
    try {
        std::string body = put_txn(base64_encode(key), 0, fresh, {});
        dom::element doc = co_await gateway_->call("/v3/kv/txn", std::move(body));
        if (succeeded(doc)) {
            secret = fresh;
        } else if (auto kv = read_back(doc)) {
            secret = value_of(*kv);
        }
    } catch (const store_error& e) {
        co_return registry::fail(registry::errc::unavailable, e.what());
    }
    if (!is_secret(secret)) {
        co_return registry::fail(registry::errc::internal,
                                 "etcd: " + key + " is not a cluster secret (64 lowercase hex characters)");
    }
    co_return secret;
}

void member_directory::publish(member_record r) {
    if (r.name != member_) {
        throw std::invalid_argument("member_directory: the record of '" + r.name + "' published as '" + member_ + "'");
    }
    if (auto back = decode_member_record(encode_member_record(r)); !back) {
        throw std::invalid_argument("member_directory: the record of member '" + member_ +
                                    "' would not be read: " + back.err().message);
    }
    record_ = std::move(r);
    ++version_;
    if (!std::exchange(started_, true)) {
        running_.spawn(hold(shared_from_this()));
    } else {
        wake_.request_stop();
    }
}

registry::task<void> member_directory::withdraw() {
    if (std::exchange(withdrawn_, true)) co_return;
    stop();
    co_await running_.join();  // it may be granting a lease or making the key right now
    created_ = 0;
    const std::array<std::string*, 2> leases{&lease_id_, &abandoned_};
    for (std::string* lease : leases) {
        if (lease->empty()) continue;
        try {
            co_await revoke(std::exchange(*lease, std::string()));
        } catch (const etcd_unreachable& e) {
            log::warn("could not revoke the member lease; the member's record goes when it runs out",
                      {{"member", member_}, {"error", e.what()},
                       {"ttl_seconds", static_cast<std::int64_t>(lease_ttl_.count())}});
        }
    }
}

void member_directory::stop() {
    stop_.request_stop();
    wake_.request_stop();
}

registry::task<registry::result<std::vector<member_record>>> member_directory::members() {
    const std::string prefix = gateway_->options().prefix + std::string(etcd_members_prefix);
    std::string body;
    registry::detail::json_writer w(body);
    w.begin_object()
        .key("key").string(base64_encode(prefix))
        .key("range_end").string(base64_encode(etcd_prefix_end(prefix)))
        .end_object();
    std::vector<member_record> out;
    try {
        dom::element doc = co_await gateway_->call("/v3/kv/range", std::move(body));
        dom::array kvs;
        if (doc["kvs"].get(kvs) != simdjson::SUCCESS) co_return out;  // etcd's JSON leaves an empty list out
        for (dom::element kv : kvs) {
            auto record = decode_member_record(value_of(kv));
            if (!record) {
                const std::string key = base64_decode(etcd_field(kv, "key")).value_or(std::string());
                log::warn("a member record that does not decode is skipped",
                          {{"key", log::clip(key)}, {"error", record.err().message}});
                continue;
            }
            out.push_back(std::move(*record));
        }
    } catch (const store_error& e) {
        co_return registry::fail(registry::errc::unavailable, e.what());
    }
    co_return out;
}

// Takes the member's key, writes what publish() asked for, keeps the lease
// alive, and starts again when the key or its lease is lost, until stopped.
// One step a turn; each says when the next is due.
registry::task<void> member_directory::hold(std::shared_ptr<member_directory> self) {
    const auto renewal = std::chrono::duration_cast<std::chrono::milliseconds>(self->lease_ttl_) / 3;
    bool troubled = false;  // etcd could not be asked: logged once, until it answers again
    while (!self->stop_.stop_requested()) {
        const registry::time_point now = self->clock_.now();
        registry::time_point next = now;
        try {
            if (self->created_ && now - self->renewed_ >= self->lease_ttl_) {
                log::warn("member lease not renewed within its TTL; publishing the member again",
                          {{"member", self->member_}});
                self->lose();
            } else if (!self->created_) {
                if (co_await self->take()) {
                    log::info("published as a member of the cluster",
                              {{"member", self->member_}, {"create_revision", self->created_}});
                } else {
                    next = now + retry_pause;
                }
            } else if (self->written_ != self->version_) {
                if (!co_await self->put_record(self->created_)) {
                    log::warn("member key gone from etcd; publishing the member again", {{"member", self->member_}});
                    self->lose();
                }
            } else if (now >= self->renewed_ + renewal) {
                if (co_await self->renew()) {
                    next = self->renewed_ + renewal;
                } else {
                    log::warn("member lease ran out in etcd; publishing the member again", {{"member", self->member_}});
                    self->lose();
                }
            } else {
                next = self->renewed_ + renewal;
            }
            if (std::exchange(troubled, false)) {
                log::info("etcd answers the member directory again", {{"member", self->member_}});
            }
        } catch (const etcd_unreachable& e) {
            if (!std::exchange(troubled, true)) {
                log::warn("member directory: etcd cannot be asked; trying again",
                          {{"member", self->member_}, {"error", e.what()}});
            }
            next = now + retry_pause;
        } catch (const store_error& e) {
            log::warn("member directory: etcd refused a request; publishing the member again",
                      {{"member", self->member_}, {"error", e.what()}});
            self->lose();
            next = now + retry_pause;
        }
        if (next <= self->clock_.now()) continue;
        // Named locals: GCC 12 mishandles temporaries in a co_await expression.
        std::stop_token wake = self->wake_.get_token();
        co_await self->clock_.sleep_until(next, wake);
        if (self->stop_.stop_requested()) co_return;
        if (self->wake_.stop_requested()) self->wake_ = std::stop_source();
    }
}

// The member's key under a lease of ours if nobody holds it; true (and
// created_ set) when it is ours.
registry::task<bool> member_directory::take() {
    // A lease given up on may still hold our key: we would wait for ourselves.
    if (!abandoned_.empty()) {
        co_await revoke(abandoned_);
        abandoned_.clear();
    }
    // A lease granted for an earlier try may have run out meanwhile: an old one is replaced.
    if (!lease_id_.empty() && clock_.now() - renewed_ >= std::chrono::milliseconds(lease_ttl_) / 2) lease_id_.clear();
    if (lease_id_.empty()) {
        std::string body;
        registry::detail::json_writer w(body);
        w.begin_object().key("TTL").number(static_cast<std::uint64_t>(lease_ttl_.count())).end_object();
        dom::element doc = co_await gateway_->call("/v3/lease/grant", std::move(body));
        lease_id_ = std::string(etcd_field(doc, "ID"));
        renewed_ = clock_.now();
    }
    const std::uint64_t version = version_;
    std::string body = put_txn(key_, 0, encode_member_record(record_), lease_id_);
    dom::element doc = co_await gateway_->call("/v3/kv/txn", std::move(body));
    if (succeeded(doc)) {
        dom::element header;
        if (doc["header"].get(header) != simdjson::SUCCESS) throw store_error("etcd: no header in a txn's answer");
        created_ = etcd_number(etcd_field(header, "revision"));  // the key was created by this txn
        written_ = version;
        waiting_ = false;
        co_return true;
    }
    auto kv = read_back(doc);
    std::string_view lease;
    if (kv && (*kv)["lease"].get(lease) == simdjson::SUCCESS && lease == lease_id_) {
        // Made by an earlier try of ours whose answer was lost: ours, its value written again.
        created_ = etcd_number(etcd_field(*kv, "create_revision"));
        written_ = 0;
        waiting_ = false;
        co_return true;
    }
    if (!std::exchange(waiting_, true)) {
        member_record holder;  // unknown (empty) when its record does not decode
        if (auto r = decode_member_record(kv ? value_of(*kv) : std::string())) holder = std::move(*r);
        log::warn("member name held by another registryd; waiting for it",
                  {{"member", member_}, {"holder_host", log::clip(holder.host)}, {"holder_pid", holder.pid}});
    }
    co_return false;
}

// The record under our lease if the key's create revision is still `created`.
registry::task<bool> member_directory::put_record(std::uint64_t created) {
    const std::uint64_t version = version_;
    std::string body = put_txn(key_, created, encode_member_record(record_), lease_id_);
    dom::element doc = co_await gateway_->call("/v3/kv/txn", std::move(body));
    if (!succeeded(doc)) co_return false;
    written_ = version;
    co_return true;
}

// True while etcd keeps the lease.
registry::task<bool> member_directory::renew() {
    std::string body;
    registry::detail::json_writer w(body);
    w.begin_object().key("ID").string(lease_id_).end_object();
    dom::element doc = co_await gateway_->call("/v3/lease/keepalive", std::move(body));
    std::string_view left;  // absent: 0, the lease is gone
    dom::element result;
    if (doc["result"].get(result) != simdjson::SUCCESS || result["TTL"].get(left) != simdjson::SUCCESS) left = "0";
    if (etcd_number(left) == 0) co_return false;
    renewed_ = clock_.now();
    co_return true;
}

// etcd_unreachable when etcd cannot be asked; a lease etcd does not know is
// already gone.
registry::task<void> member_directory::revoke(std::string lease) {
    std::string body;
    registry::detail::json_writer w(body);
    w.begin_object().key("ID").string(lease).end_object();
    try {
        co_await gateway_->call("/v3/lease/revoke", std::move(body));
    } catch (const etcd_unreachable&) {
        throw;
    } catch (const store_error&) {
    }
}

// The key is not ours any more, or may not be: taken again from the start.
void member_directory::lose() {
    if (!lease_id_.empty()) abandoned_ = std::exchange(lease_id_, std::string());
    created_ = 0;
}

}  // namespace registryd
