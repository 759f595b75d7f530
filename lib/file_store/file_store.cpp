// file_store's front: opening, appending (one record, one write, one
// fdatasync) and the fault points. The format and the crash-safety argument:
// format.hpp; recovery: recovery.cpp; the index: index.cpp; compaction:
// compaction.cpp.
#include <registry/file_store.hpp>

#include "byte_io.hpp"
#include "files.hpp"
#include "format.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace registry {

using namespace detail;
namespace fs = std::filesystem;

namespace {

std::string_view step_name(file_store_step step) {
    switch (step) {
        case file_store_step::journal_write: return "journal write";
        case file_store_step::journal_sync: return "journal sync";
        case file_store_step::snapshot_write: return "snapshot write";
        case file_store_step::snapshot_sync: return "snapshot sync";
        case file_store_step::snapshot_rename: return "snapshot rename";
        case file_store_step::directory_sync: return "directory sync";
        case file_store_step::journal_truncate: return "journal truncate";
        case file_store_step::journal_truncate_sync: return "journal truncate sync";
    }
    return "unknown step";
}

}  // namespace

file_store::file_store(fs::path dir, file_store_options options) : dir_(std::move(dir)), options_(std::move(options)) {}

file_store::~file_store() {
    for (int fd : {snapshot_fd_, journal_fd_, lock_fd_, dir_fd_}) {
        if (fd >= 0) ::close(fd);
    }
}

result<std::unique_ptr<file_store>> file_store::open(const fs::path& dir, file_store_options options) {
    std::unique_ptr<file_store> store(new file_store(dir, std::move(options)));
    try {
        store->recover();
    } catch (const std::exception& e) {
        return fail(errc::unavailable, e.what());
    }
    return store;
}

void file_store::append(std::span<const store_batch> batches) {
    if (poisoned_) throw store_error("file_store: an earlier write failed; the store accepts no more writes");
    if (batches.empty()) return;
    try {
        encode_record(record_buffer_, next_sequence_, batches);
        fault_point(file_store_step::journal_write);
        const std::uint64_t record_offset = stats_.journal_bytes;
        write_all(journal_fd_, record_buffer_, record_offset, dir_ / "journal");
        stats_.journal_bytes += record_buffer_.size();
        sync(journal_fd_, sync_kind::data, file_store_step::journal_sync, dir_ / "journal");
        ++next_sequence_;
        // Read back as replay would, so the index points into the journal.
        apply_record(std::string_view(record_buffer_).substr(record_header_size), record_offset + record_header_size,
                     dir_ / "journal");
        if (stats_.journal_bytes > options_.compact_journal_bytes) compact();
    } catch (...) {
        poisoned_ = true;
        throw;
    }
}

void file_store::sync(int fd, sync_kind kind, std::optional<file_store_step> step, const fs::path& path) {
    if (step) fault_point(*step);
    ++stats_.fsyncs;
    if ((kind == sync_kind::data ? ::fdatasync(fd) : ::fsync(fd)) != 0) {
        throw_system_error(kind == sync_kind::data ? "fdatasync" : "fsync", path, errno);
    }
}

void file_store::fault_point(file_store_step step) const {
    if (options_.inject_fault && options_.inject_fault(step)) {
        throw store_error("file_store: injected fault at " + std::string(step_name(step)) + ": " +
                          std::strerror(EIO));
    }
}

}  // namespace registry
