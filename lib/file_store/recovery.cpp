// Opening a store directory: the lock, the snapshot, the journal's replay and
// the repair of a torn tail (the argument: format.hpp).
#include <registry/file_store.hpp>

#include "byte_io.hpp"
#include "files.hpp"
#include "format.hpp"
#include "crc32c.hpp"

#include <algorithm>
#include <cerrno>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>

namespace registry {

using namespace detail;
namespace fs = std::filesystem;

void file_store::recover() {
    std::error_code ec;
    bool created = fs::create_directories(dir_, ec);
    if (ec) throw store_error("file_store: create directory " + dir_.string() + ": " + ec.message());

    dir_fd_ = open_file(dir_, O_RDONLY | O_DIRECTORY).release();
    lock_fd_ = open_file(dir_ / "LOCK", O_RDWR | O_CREAT).release();
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            throw store_error("file_store: " + dir_.string() + " is in use by another store (LOCK is held)");
        }
        throw_system_error("lock", dir_ / "LOCK", errno);
    }
    if (created) {
        // Make the new directory's own entry durable too.
        fs::path self = fs::absolute(dir_);
        if (!self.has_filename()) self = self.parent_path();  // "dir/" names dir itself
        fs::path parent = self.parent_path();
        unique_fd parent_fd = open_file(parent, O_RDONLY | O_DIRECTORY);
        sync(parent_fd.get(), sync_kind::full, std::nullopt, parent);
    }

    for (const char* leftover : {"snapshot.tmp", "journal.tmp"}) {
        if (fs::remove(dir_ / leftover, ec)) stats_.recovery.removed_temporary_files = true;
        if (ec) throw store_error("file_store: remove " + (dir_ / leftover).string() + ": " + ec.message());
    }

    load_snapshot();

    fs::path journal = dir_ / "journal";
    if (!fs::exists(journal, ec)) {
        if (ec) throw store_error("file_store: stat " + journal.string() + ": " + ec.message());
        if (stats_.recovery.snapshot_loaded) throw_corrupt(journal, "missing, but a snapshot exists");
        create_journal();
    }
    journal_fd_ = open_file(journal, O_RDWR).release();
    replay_journal();
}

void file_store::load_snapshot() {
    fs::path path = dir_ / "snapshot";
    int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (raw < 0) {
        if (errno == ENOENT) return;
        throw_system_error("open", path, errno);
    }
    unique_fd fd(raw);
    const mapped_file file(fd.get(), path);
    const std::string_view bytes = file.bytes();

    byte_reader header(bytes);
    if (header.bytes(snapshot_magic.size()) != snapshot_magic) throw_corrupt(path, "bad magic");
    if (std::uint32_t version = header.u32(); version != format_version) {
        throw_corrupt(path, "unsupported format version " + std::to_string(version));
    }
    std::uint32_t crc = header.u32();
    if (header.failed()) throw_corrupt(path, "truncated header");
    std::string_view body = std::string_view(bytes).substr(snapshot_header_size);
    if (crc32c(body) != crc) throw_corrupt(path, "checksum mismatch");

    byte_reader reader(body, snapshot_header_size);
    revision_ = reader.u64();
    snapshot_sequence_ = reader.u64();
    std::uint64_t count = reader.u64();
    for (std::uint64_t i = 0; i < count && !reader.failed(); ++i) {
        std::string_view key = reader.sized_bytes();
        std::string_view value = reader.sized_bytes();
        if (!reader.failed()) {
            const value_location at{reader.offset() - value.size(), static_cast<std::uint32_t>(value.size()), true};
            entries_.emplace_hint(entries_.end(), key, at);
        }
    }
    if (!reader.at_end() || entries_.size() != count) throw_corrupt(path, "malformed body");
    snapshot_fd_ = fd.release();

    stats_.recovery.snapshot_loaded = true;
    stats_.recovery.snapshot_revision = revision_;
}

void file_store::create_journal() {
    // Created under a temporary name so a crash never leaves a journal
    // without its header.
    fs::path tmp = dir_ / "journal.tmp";
    {
        unique_fd fd = open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC);
        write_all(fd.get(), journal_header(), 0, tmp);
        sync(fd.get(), sync_kind::full, std::nullopt, tmp);
    }
    if (::rename(tmp.c_str(), (dir_ / "journal").c_str()) != 0) throw_system_error("rename", tmp, errno);
    sync(dir_fd_, sync_kind::full, std::nullopt, dir_);
}

void file_store::replay_journal() {
    fs::path path = dir_ / "journal";
    mapped_file file(journal_fd_, path);
    const std::string_view journal = file.bytes();
    if (journal.substr(0, journal_header_size) != journal_header()) {
        byte_reader header(journal);
        bool known_magic = header.bytes(journal_magic.size()) == journal_magic;
        std::uint32_t version = header.u32();
        if (known_magic && !header.failed()) {
            throw_corrupt(path, "unsupported format version " + std::to_string(version));
        }
        throw_corrupt(path, "bad header");
    }

    std::size_t offset = journal_header_size;
    std::uint64_t last_sequence = 0;  // of the previous record; 0 before the first
    while (auto record = read_record(journal, offset)) {
        if (last_sequence == 0 ? record->sequence == 0 || record->sequence > snapshot_sequence_ + 1
                               : record->sequence != last_sequence + 1) {
            throw_corrupt(path, "record at offset " + std::to_string(offset) + " has sequence " +
                                    std::to_string(record->sequence) + ", records are missing");
        }
        last_sequence = record->sequence;
        if (record->sequence > snapshot_sequence_) {
            apply_record(record->payload, offset + record_header_size, path);
            ++stats_.recovery.records_replayed;
        } else {
            ++stats_.recovery.records_skipped;
        }
        offset = record->end;
    }

    if (offset < journal.size()) {
        std::size_t next = claimed_end(journal, offset);
        if (next < journal.size() && read_record(journal, next)) {
            throw_corrupt(path, "damaged record at offset " + std::to_string(offset) + " is followed by valid ones");
        }
        // A torn tail: the record being written when the process stopped.
        stats_.recovery.truncated_tail_bytes = journal.size() - offset;
        file.unmap();  // no mapping may reach past the end of a file
        if (::ftruncate(journal_fd_, static_cast<off_t>(offset)) != 0) throw_system_error("truncate", path, errno);
        sync(journal_fd_, sync_kind::full, std::nullopt, path);
    }

    stats_.journal_bytes = offset;
    next_sequence_ = std::max(snapshot_sequence_, last_sequence) + 1;
}

}  // namespace registry
