// The members of several registryd on one etcd and prefix: each registryd is
// a member with a name, and publishes a record of itself (where it listens,
// the container engines it offers the writer) at `prefix` + "meta/members/"
// + its name, under an etcd lease of its own, so that the record goes when
// the registryd does; the writer reads them all. Also the cluster's shared
// secret, `prefix` + "meta/cluster_secret", made once by whichever member
// asks first.
#pragma once

#include "runtime/asio_clock.hpp"
#include "store/etcd_gateway.hpp"

#include <registry/async_scope.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace registryd {

// Under the prefix, beside store/etcd_gateway.hpp's meta keys.
inline constexpr std::string_view etcd_members_prefix = "meta/members/";
inline constexpr std::string_view etcd_cluster_secret_key = "meta/cluster_secret";

// One member's record, the value of its key (JSON).
struct member_record {
    std::string name;
    // Where its listener is reached (ws://host:port/, wss://); empty before it listens.
    std::string url;
    struct engine {
        std::string name;
        std::size_t capacity = 8;
        friend bool operator==(const engine&, const engine&) = default;
    };
    std::vector<engine> engines;  // the container engines it offers
    std::string host;             // for log lines
    std::uint64_t pid = 0;
    // A deploy target it offers (cluster/target_offer.hpp): what the writer
    // needs to describe it (deploy_target's where(), endpoint_address() and
    // prefix()) without asking.
    struct target {
        std::string name;
        std::string endpoint_address;
        std::string prefix;
        std::string host;      // where services installed there run (a remote location's)
        std::string ssh_user;  // optional
        std::uint16_t ssh_port = 0;
        friend bool operator==(const target&, const target&) = default;
    };
    std::vector<target> targets;
    friend bool operator==(const member_record&, const member_record&) = default;
};

std::string encode_member_record(const member_record& r);
// invalid_request naming the field at fault. Strings are at most 1024 bytes
// and there are at most 256 engines and 256 targets: a record is read by every member.
// Fields it does not know are skipped: a newer registryd's record is still
// read during an upgrade.
registry::result<member_record> decode_member_record(std::string_view json);

class member_directory : public std::enable_shared_from_this<member_directory> {
public:
    member_directory(boost::asio::io_context& io, std::shared_ptr<etcd_gateway> gateway, std::string member,
                     std::chrono::seconds lease_ttl);
    // With an etcd client of its own. Made here, not by the caller: the
    // gateway holds simdjson's parser, whose layout is that of the
    // translation units built with simdjson's definitions (this one).
    static std::shared_ptr<member_directory> open(boost::asio::io_context& io, const etcd_options& options,
                                                  std::string member);

    const std::string& name() const noexcept { return member_; }

    // 64 lowercase hex characters (32 bytes of the OS's random), the same
    // for every member: created if absent, else read, in one transaction.
    // unavailable when etcd cannot be asked; internal when what is stored is
    // not such a secret.
    registry::task<registry::result<std::string>> cluster_secret();

    // Publishes `r` in the background: the key is made under a lease of
    // its own only if it does not exist (while another registryd holds the
    // name, or this member's previous process whose lease has not run out,
    // it looks again every half second), then the lease is kept alive every
    // third of its TTL. A lost lease (etcd says it is gone, or no renewal got
    // through for a TTL) publishes again from the start; an unreachable etcd
    // is asked again. A later call changes the value under the same lease.
    // std::invalid_argument when `r` is not this member's or would not
    // decode. Once stopped, a directory publishes nothing more.
    void publish(member_record r);
    // The key is ours, and kept.
    bool published() const noexcept { return created_ != 0 && !stop_.stop_requested(); }
    // Stops publishing and revokes the lease: the key goes at once.
    registry::task<void> withdraw();
    // Stops publishing; the key goes when its lease runs out.
    void stop();

    // Every member's record, in one read; a record that does not decode is
    // skipped (logged). unavailable when etcd cannot be asked.
    registry::task<registry::result<std::vector<member_record>>> members();

private:
    static registry::task<void> hold(std::shared_ptr<member_directory> self);
    registry::task<bool> take();
    registry::task<bool> put_record(std::uint64_t created);
    registry::task<bool> renew();
    registry::task<void> revoke(std::string lease);
    void lose();

    std::shared_ptr<etcd_gateway> gateway_;
    asio_clock clock_;
    std::string member_;
    std::chrono::seconds lease_ttl_;
    std::string key_;  // base64, as etcd's JSON wants it
    member_record record_;
    std::uint64_t version_ = 0;  // of record_, counted by publish()
    std::uint64_t written_ = 0;  // the version in etcd
    std::string lease_id_;       // etcd's decimal lease id, empty before a grant
    std::string abandoned_;      // a lease given up on that may still hold the key
    registry::time_point renewed_{};  // the lease's last grant or renewal
    std::uint64_t created_ = 0;       // the key's create revision once ours
    bool started_ = false;
    bool waiting_ = false;  // logged that another registryd holds the name
    bool withdrawn_ = false;
    std::stop_source stop_;
    std::stop_source wake_;  // publish() and stop() wake the background work
    registry::async_scope running_;
};

}  // namespace registryd
