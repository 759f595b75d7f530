// registry::store over etcd (v3.4+), through its JSON gateway (/v3/kv/...)
// with the daemon's own HTTP client: one registryd keeps its registry in an
// etcd cluster instead of a local file (config `store.kind: etcd`).
//
// Layout under `prefix`: each registry key as is, and `prefix` + "meta/revision"
// holding the registry's revision (decimal), written in the same
// transaction as every batch. commit() queues its batch and suspends;
// whenever no transaction is in flight, everything queued goes out as one
// (group commit: etcd orders and persists it as one raft entry), and the
// commits resume in submission order once etcd answered. A failed
// transaction fails its group and poisons the store, as the file store does:
// what etcd applied is then unknown to this process, and only a restart
// (which loads what etcd holds) can tell.
//
// Endpoints are tried in order, each within `dial_timeout` (a TLS handshake
// within another); a request gets `request_timeout`.
//
// Several registryd on one etcd and prefix: one writes, the others stand by.
// campaign() (store/etcd_election.hpp) takes `prefix` + "meta/writer" under
// an etcd lease of `writer_lease_ttl` (a transaction that creates the key
// only if it does not exist), keeps the lease alive every third of its TTL,
// and only then calls `elected`: the daemon loads the registry and serves. A
// standby retries every half second, so it takes over at most a TTL (plus
// half a second) after the writer died, at once after the writer resigned at
// shutdown. Every transaction of the writer compares the writer key's create
// revision with its own: a writer that lost its lease (frozen, cut off from etcd) and
// was replaced cannot write anything afterwards, whatever it still believes;
// `ended` is then called (also when etcd says the lease ran out), and the
// daemon exits to come back as a standby. An etcd that cannot be reached
// deposes nobody (its writes wait, docs/protocol.md "Store outages"), except
// at start: a registryd that cannot ask etcd at all exits, saying why.
//
// A standby serves reads from a registry it keeps up to date: it loads it
// at one etcd revision (pin_loads()), then follows the writer's
// transactions from there through an etcd watch (follow()). read_barrier()
// lets a read wait until the standby has applied every transaction the
// writer had committed when the read came in (read-your-writes across
// registryd): every writer transaction writes `prefix` + "meta/revision",
// so that key's mod_revision, read linearizably, is the last one.
#pragma once

#include "store/daemon_store.hpp"
#include "store/etcd_follower.hpp"
#include "store/etcd_gateway.hpp"
#include "store/etcd_probe.hpp"

#include <registry/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace registryd {

class etcd_store_port final : public daemon_store {
public:
    etcd_store_port(boost::asio::io_context& io, etcd_options options);
    etcd_store_port(const etcd_store_port&) = delete;
    etcd_store_port& operator=(const etcd_store_port&) = delete;
    ~etcd_store_port() override;

    registry::task<std::uint64_t> load(std::string prefix, registry::store_visitor each) override;
    registry::task<void> commit(registry::store_batch batch) override;

    // The writer role, above. `holder` names this registryd in the writer
    // key (logged by the standbys). `elected` and `ended` run on the
    // io_context, each at most once; `ended` says why this registryd is not
    // (was_writer: no longer) the writer, and every commit fails after it.
    // `standing_by` is called with the writer's name whenever a standby sees
    // another one hold the key. Until `elected`, every commit fails.
    void campaign(std::string holder, std::function<void()> elected,
                  std::function<void(std::string why, bool was_writer)> ended,
                  std::function<void(std::string writer)> standing_by);
    // Once elected: the writer key's value becomes `holder` (what the
    // standbys see; cluster/writer_address.hpp adds where the writer is
    // reached). False when the key is no longer ours; throws store_error
    // when etcd cannot be asked.
    registry::task<bool> advertise(std::string holder);
    // Revokes the writer lease (after stop(), at shutdown).
    registry::task<void> resign() override;

    // The standby's reads. After pin_loads(), the first load() remembers the
    // etcd revision of its first answer and every later load() reads at that
    // revision, so that the loads of several prefixes are one snapshot; a
    // load then fails (store_error) if etcd compacted that revision away.
    void pin_loads();
    // The revision the loads are pinned to; 0 before the first pinned load.
    std::uint64_t pinned_revision() const noexcept;
    // Later loads read the latest state again (the writer's); returns the
    // revision the loads were pinned to.
    std::uint64_t unpin_loads();
    // Watches every key under the prefix from etcd revision `after` + 1 and
    // calls `each` on the io_context once per revision that changed a key
    // outside meta/, in revision order, none skipped or repeated. A broken
    // stream or an unreachable etcd is retried every half second from the
    // revision after the last one applied. `lost` is called once, and
    // following ends, when etcd no longer has the revisions to send
    // (compacted), or a watch message is larger than the store's body limit,
    // or `each` threw; follow() may then be called again (after loading
    // again). Nothing is called after stop().
    void follow(std::uint64_t after, std::function<void(etcd_txn_seen)> each,
                std::function<void(std::string why)> lost);
    // Completes once every transaction the writer had committed when it was
    // called has been passed to `each` (and `each` returned). Fails with
    // errc::unavailable when etcd cannot be asked, or when following has not
    // got that far within the request timeout. Concurrent callers share one
    // request to etcd.
    registry::task<registry::result<void>> read_barrier();
    // Following ends without `lost` (the standby stops); waiting barriers fail.
    void stop_following();

    // Later commits fail; the ones queued fail too (their transaction was
    // never sent). A transaction in flight completes on the io_context.
    // Following stops; waiting read barriers fail.
    void stop() override;
    // Transactions etcd acknowledged.
    std::uint64_t fsyncs() const noexcept override;
    // What etcd_probe last saw of etcd.
    store_health health() const override;

private:
    class impl;  // the writer's side: commits (fenced by its etcd_election), pinned loads
    std::shared_ptr<impl> impl_;
    std::unique_ptr<etcd_follower> follower_;  // the standby's side
    std::unique_ptr<etcd_probe> probe_;
};

}  // namespace registryd
