// registry::store over the embedded file_store, with group commit.
//
// commit() queues its batch at once and suspends. Whenever no flush is
// running, everything queued goes to a writer thread owned by this object as
// one group: one file_store::append, so one write and one fdatasync for all of
// it. Batches arriving meanwhile form the next group. Completions are posted
// back to the io_context, which resumes the commits in submission order; a
// failed append fails its whole group (and, the file_store being poisoned,
// every later one) with store_error.
//
// All members but fsyncs() are called on the io_context's thread.
#pragma once

#include "store/daemon_store.hpp"

#include <cstdint>
#include <memory>

namespace boost::asio {
class io_context;
}

namespace registry {
class file_store;
}

namespace registryd {

class file_store_port final : public daemon_store {
public:
    file_store_port(boost::asio::io_context& io, registry::file_store& fs);
    file_store_port(const file_store_port&) = delete;
    file_store_port& operator=(const file_store_port&) = delete;
    ~file_store_port() override;  // stop()

    registry::task<std::uint64_t> load(std::string prefix, registry::store_visitor each) override;
    registry::task<void> commit(registry::store_batch batch) override;

    // Hands whatever is queued to the writer, waits until every group is
    // durable (or failed) and joins the writer thread. The commits still
    // suspended are resumed by completions already posted to the io_context.
    // Later commits fail with store_error.
    void stop() override;

    // Syncs done by the file_store so far; readable from any thread.
    std::uint64_t fsyncs() const noexcept override;
    store_health health() const override { return {}; }  // a local file: nothing to reach

private:
    class writer;

    // Shared with the writer thread and with completions still queued on the
    // io_context, which may outlive this object.
    std::shared_ptr<writer> writer_;
};

}  // namespace registryd
