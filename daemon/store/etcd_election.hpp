// The writer role of several registryd on one etcd and prefix
// (store/etcd_store_port.hpp, which fences its commits with it): campaign()
// takes `prefix` + "meta/writer" under an etcd lease of `writer_lease_ttl`
// (a transaction that creates the key only if it does not exist), keeps the
// lease alive every third of its TTL, and only then calls `elected`. A
// standby looks again every half second. The key's create revision is the
// fence every commit of the writer compares; a writer whose key is gone
// (the lease ran out in etcd, another registryd made it) is deposed:
// `ended(why, true)`, once. An etcd that cannot be reached deposes nobody,
// except at start: `ended(why, false)` when etcd cannot be asked at all.
#pragma once

#include "runtime/asio_clock.hpp"
#include "store/etcd_gateway.hpp"

#include <registry/async_scope.hpp>
#include <registry/task.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

namespace boost::asio {
class io_context;
}

namespace registryd {

class etcd_election : public std::enable_shared_from_this<etcd_election> {
public:
    etcd_election(boost::asio::io_context& io, std::shared_ptr<etcd_gateway> gateway);

    // See etcd_store_port::campaign.
    void campaign(std::string holder, std::function<void()> elected,
                  std::function<void(std::string why, bool was_writer)> ended,
                  std::function<void(std::string writer)> standing_by);
    // Once elected: the writer key's value becomes `holder`, under the same
    // lease, if the key is still ours (false otherwise).
    registry::task<bool> advertise(std::string holder);
    // Revokes the lease: a standby takes over at once.
    registry::task<void> resign();
    // The campaign and the lease's renewals end.
    void stop();
    // The writer key is not ours any more (a commit's fence failed):
    // `ended(why, true)`, once.
    void depose(const std::string& why);

    bool campaigning() const noexcept { return campaigning_; }
    // The writer key's create revision once ours; 0 before.
    std::uint64_t fence() const noexcept { return fence_; }
    // Why this registryd was deposed, once it was.
    const std::optional<std::string>& deposed() const noexcept { return deposed_why_; }
    // The writer key as etcd's JSON wants it (base64), for a commit's compare.
    const std::string& key() const noexcept { return key_; }

private:
    static registry::task<void> stand(std::shared_ptr<etcd_election> self);
    static registry::task<void> keep(std::shared_ptr<etcd_election> self);
    registry::task<std::optional<std::string>> holder_now();
    registry::task<bool> take();
    registry::task<simdjson::dom::element> put_key(std::uint64_t created, const std::string& value);
    void end(const std::string& why, bool was_writer);

    std::shared_ptr<etcd_gateway> gateway_;
    asio_clock clock_;
    std::string key_;
    std::string holder_;
    std::function<void()> elected_;
    std::function<void(std::string, bool)> ended_;
    std::function<void(std::string)> standing_by_;
    bool campaigning_ = false;
    std::string lease_id_;  // etcd's decimal lease id, empty before the first grant
    registry::time_point lease_granted_{};
    std::uint64_t fence_ = 0;
    std::optional<std::string> deposed_why_;
    std::stop_source stop_;
    registry::async_scope running_;
};

}  // namespace registryd
