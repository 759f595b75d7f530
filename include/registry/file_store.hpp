// file_store: the embedded durable store, a journal plus a snapshot in one
// directory.
//
// Synchronous on purpose: every call blocks in syscalls on the calling thread
// and the store spawns no threads, so the embedder decides where the blocking
// happens (registryd runs it on a writer thread, with group commit). Not
// thread-safe: one caller at a time.
//
// The on-disk format and the crash-safety argument are at the top of
// lib/file_store/format.hpp.
#pragma once

#include <registry/ports/store.hpp>
#include <registry/result.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace registry {

// The durable steps the store takes, in the order compaction takes them.
enum class file_store_step {
    journal_write,
    journal_sync,
    snapshot_write,
    snapshot_sync,
    snapshot_rename,
    directory_sync,
    journal_truncate,
    journal_truncate_sync,
};

struct file_store_options {
    // Write a snapshot and empty the journal once it grows past this.
    std::uint64_t compact_journal_bytes = 8 << 20;

    // Test-only: asked before each step; returning true makes that step fail
    // as if its syscall had returned EIO, leaving the files as a crash at that
    // point would.
    std::function<bool(file_store_step)> inject_fault;
};

// What open() found and repaired.
struct recovery_report {
    bool snapshot_loaded = false;
    std::uint64_t snapshot_revision = 0;
    std::uint64_t records_replayed = 0;
    std::uint64_t records_skipped = 0;       // already contained in the snapshot
    std::uint64_t truncated_tail_bytes = 0;  // torn or corrupt journal tail cut off
    bool removed_temporary_files = false;    // leftovers of an interrupted write
};

struct file_store_stats {
    std::uint64_t fsyncs = 0;  // fsync and fdatasync calls, including compaction's
    std::uint64_t journal_bytes = 0;
    std::uint64_t compactions = 0;
    recovery_report recovery;
};

class file_store {
public:
    // Creates `dir` if missing, locks it against other openers, and recovers
    // the last durable state.
    static result<std::unique_ptr<file_store>> open(const std::filesystem::path& dir,
                                                    file_store_options options = {});

    file_store(const file_store&) = delete;
    file_store& operator=(const file_store&) = delete;
    ~file_store();

    // Calls `each` with the entries whose keys start with `prefix`, in key
    // order, their values viewed where they lie in the (mapped) files: the
    // store keeps only where each value is, so the registry's decoded copy is
    // the only one in memory. The views are valid during the call only.
    // Returns the revision. Throws store_error if the files cannot be read.
    std::uint64_t visit(std::string_view prefix, const store_visitor& each) const;

    // The same entries, copied.
    store_state state(std::string_view prefix = {}) const;

    // Writes the batches as one journal record with one write and one
    // fdatasync; returns once they are durable. Throws store_error on any
    // failure, after which the store is poisoned and every append throws.
    void append(std::span<const store_batch> batches);

    const file_store_stats& stats() const noexcept { return stats_; }

private:
    file_store(std::filesystem::path dir, file_store_options options);

    enum class sync_kind { data, full };  // fdatasync or fsync

    void recover();
    void load_snapshot();
    void create_journal();
    void replay_journal();
    void apply_record(std::string_view payload, std::uint64_t payload_offset, const std::filesystem::path& journal);
    void compact();
    void sync(int fd, sync_kind kind, std::optional<file_store_step> step, const std::filesystem::path& path);
    void fault_point(file_store_step step) const;

    // Where a key's current value lies: its bytes in the snapshot or in the
    // journal. Values are read back only by state() and by compaction.
    struct value_location {
        std::uint64_t offset = 0;
        std::uint32_t length = 0;
        bool in_snapshot = false;
    };

    std::filesystem::path dir_;
    file_store_options options_;
    int dir_fd_ = -1;
    int lock_fd_ = -1;
    int journal_fd_ = -1;
    int snapshot_fd_ = -1;  // the current snapshot, kept open to read values from

    std::map<std::string, value_location, std::less<>> entries_;
    std::uint64_t revision_ = 0;
    std::uint64_t snapshot_sequence_ = 0;  // last record the snapshot contains
    std::uint64_t next_sequence_ = 1;      // of the next journal record
    std::string record_buffer_;            // reused so append does not allocate
    file_store_stats stats_;
    bool poisoned_ = false;
};

}  // namespace registry
