// Compaction: a new snapshot of every live value, then an empty journal (each
// step's crash outcome: format.hpp).
#include <registry/file_store.hpp>

#include "byte_io.hpp"
#include "crc32c.hpp"
#include "files.hpp"
#include "format.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>

namespace registry {

using namespace detail;
namespace fs = std::filesystem;

namespace {

// Writes a new file front to back through a bounded buffer, so compaction
// never holds a whole snapshot in memory, and checksums what it writes after
// its first `unchecked` bytes. Local to this file, so that its calls stay
// inlined into compact().
class checksummed_writer {
public:
    checksummed_writer(int fd, const fs::path& path, std::size_t unchecked)
        : fd_(fd), path_(path), unchecked_(unchecked) {
        buffer_.reserve(buffer_bytes);
    }

    void append(std::string_view bytes) {
        if (buffer_.size() + bytes.size() > buffer_bytes) flush();
        if (bytes.size() >= buffer_bytes) {
            write(bytes);
        } else {
            buffer_.append(bytes);
        }
    }
    void append_u32(std::uint32_t value) { append_le(value, 4); }
    void append_u64(std::uint64_t value) { append_le(value, 8); }

    // Where the next byte goes.
    std::uint64_t offset() const noexcept { return written_ + buffer_.size(); }

    // Writes out the buffer; returns the CRC-32C of everything after the
    // unchecked prefix.
    std::uint32_t finish() {
        flush();
        return crc32c_final(crc_);
    }

private:
    static constexpr std::size_t buffer_bytes = 64 << 10;

    // append() of a field never larger than the buffer, spelled out so that
    // it stays small enough to be inlined at each field of each entry.
    void append_le(std::uint64_t value, std::size_t width) {
        if (buffer_.size() + width > buffer_bytes) flush();
        char bytes[8];
        store_le(bytes, value, width);
        buffer_.append(bytes, width);
    }

    void flush() {
        write(buffer_);
        buffer_.clear();
    }

    void write(std::string_view bytes) {
        std::size_t skip = written_ < unchecked_ ? std::min<std::uint64_t>(unchecked_ - written_, bytes.size()) : 0;
        crc_ = crc32c_update(crc_, bytes.substr(skip));
        write_all(fd_, bytes, written_, path_);
        written_ += bytes.size();
    }

    int fd_;
    const fs::path& path_;
    std::size_t unchecked_;
    std::string buffer_;
    std::uint64_t written_ = 0;
    std::uint32_t crc_ = crc32c_initial;
};

}  // namespace

void file_store::compact() {
    fs::path tmp = dir_ / "snapshot.tmp";
    unique_fd fd = open_file(tmp, O_RDWR | O_CREAT | O_TRUNC);  // read back by state() once it is the snapshot
    std::vector<value_location> moved;  // each value's place in the new snapshot, in key order
    moved.reserve(entries_.size());
    {
        // The values are copied from where they lie now: the old snapshot
        // (still open, even once replaced) and the journal.
        const mapped_file journal(journal_fd_, dir_ / "journal");
        std::optional<mapped_file> old_snapshot;
        if (snapshot_fd_ >= 0) old_snapshot.emplace(snapshot_fd_, dir_ / "snapshot");

        fault_point(file_store_step::snapshot_write);
        checksummed_writer out(fd.get(), tmp, snapshot_header_size);
        out.append(snapshot_magic);
        out.append_u32(format_version);
        out.append_u32(0);  // checksum, written once the body is
        out.append_u64(revision_);
        out.append_u64(next_sequence_ - 1);  // every record so far
        out.append_u64(entries_.size());
        for (const auto& [key, at] : entries_) {
            const std::string_view value = (at.in_snapshot ? old_snapshot->bytes() : journal.bytes()).substr(at.offset, at.length);
            out.append_u32(static_cast<std::uint32_t>(key.size()));
            out.append(key);
            out.append_u32(at.length);
            moved.push_back({out.offset(), at.length, true});
            out.append(value);
        }
        char crc[4];
        store_le(crc, out.finish(), 4);
        write_all(fd.get(), std::string_view(crc, 4), 12, tmp);
        sync(fd.get(), sync_kind::full, file_store_step::snapshot_sync, tmp);
    }
    fault_point(file_store_step::snapshot_rename);
    if (::rename(tmp.c_str(), (dir_ / "snapshot").c_str()) != 0) throw_system_error("rename", tmp, errno);
    snapshot_sequence_ = next_sequence_ - 1;
    // Every value now lies in the new snapshot, which the journal's
    // truncation below cannot touch.
    auto next = moved.begin();
    for (auto& entry : entries_) entry.second = *next++;
    if (snapshot_fd_ >= 0) ::close(snapshot_fd_);
    snapshot_fd_ = fd.release();
    sync(dir_fd_, sync_kind::full, file_store_step::directory_sync, dir_);

    fs::path journal = dir_ / "journal";
    fault_point(file_store_step::journal_truncate);
    if (::ftruncate(journal_fd_, journal_header_size) != 0) throw_system_error("truncate", journal, errno);
    stats_.journal_bytes = journal_header_size;
    sync(journal_fd_, sync_kind::full, file_store_step::journal_truncate_sync, journal);
    ++stats_.compactions;
}

}  // namespace registry
