// The embedded durable store: journal + snapshot in one directory.
//
// On-disk format, all integers little-endian:
//
//   LOCK       empty; flock()ed exclusively while a store has it open
//   journal    header, then records, one per append() call
//   snapshot   the full state as of some journal record
//   *.tmp      a snapshot or journal being created; deleted on open
//
//   journal header   "RGJOURNL" (8 bytes), u32 format version (1)
//   record           u32 crc32c of everything after this field
//                    u32 payload length
//                    u64 sequence number
//                    payload: u32 batch count, then per batch
//                      u64 revision, u32 mutation count, then per mutation
//                        u8 kind (1 put, 0 erase), u32 key length, key,
//                        and for a put: u32 value length, value
//   snapshot         "RGSNAPSH" (8 bytes), u32 format version (1),
//                    u32 crc32c of the body; body:
//                      u64 revision, u64 sequence of the last record it
//                      contains, u64 entry count, then per entry in key
//                      order: u32 key length, key, u32 value length, value
//
// Why a crash at any point recovers the exact last durable state:
//
// Records carry their own sequence number 1, 2, 3, ... rather than relying on
// the registry's revision, because batches may share a revision (lease
// renewals do not bump it), so "revision <= snapshot revision" cannot tell
// which records a snapshot already contains. The snapshot stores S, the
// sequence of the last record applied to it. The invariant on disk is:
//   snapshot = records 1..S applied in order (S = 0 and empty without one), and
//   journal  = records a..b, contiguous, with a <= S + 1 (or no records).
// Recovery applies exactly the journal records with sequence > S, so it
// yields records 1..max(S, b): every acknowledged record, each once.
//
// Appends: one record per write, then fdatasync, then the caller is told.
// A crash mid-write leaves a prefix of the record, possibly padded with zeros;
// the length and CRC checks reject it and recovery cuts it off (and syncs the
// cut before anything new is written). Acknowledged records are never cut:
// they were synced before the next record was even written. For the same
// reason a valid record following a damaged one proves the damaged one was
// durable once, so that is reported as corruption instead of being cut.
//
// In memory the store keeps only where each key's latest value lies (in the
// snapshot or the journal: offset and length), not the value: visit() and
// compaction read the values back from the files, which it never rewrites in
// place.
//
// Compaction, with what a crash after each step leaves:
//   1. write and fsync snapshot.tmp,  the old snapshot and the full journal;
//      copying each live value from   the tmp file is deleted on open
//      the old snapshot (kept open)
//      or the journal
//   2. rename it over snapshot        either snapshot may be visible; both are
//                                     complete and consistent with the full
//                                     journal, whose records <= S get skipped
//   3. fsync the directory            the new snapshot is durable
//   4. truncate the journal to its    the journal holds either all records
//      header, fsync it               a..S (skipped) or none; new records S+1..
//                                     are only written after this is durable
// Recovery refuses to guess when the invariant is broken: a snapshot that
// fails its checks, a journal without its header, a missing journal next to a
// snapshot, or a journal starting after S + 1 are errors, never an empty store.

#include <registry/file_store.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace registry {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view journal_magic = "RGJOURNL";
constexpr std::string_view snapshot_magic = "RGSNAPSH";
constexpr std::uint32_t format_version = 1;
constexpr std::size_t journal_header_size = 12;
constexpr std::size_t record_header_size = 16;
constexpr std::size_t snapshot_header_size = 16;
constexpr std::uint8_t kind_erase = 0;
constexpr std::uint8_t kind_put = 1;

// CRC-32C (Castagnoli), slicing-by-8 where the CPU has no crc32 instruction:
// the journal is checksummed on every append, so the byte-at-a-time loop
// would show up next to the fdatasync.
using crc_tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr crc_tables make_crc_tables() {
    crc_tables t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        t[0][i] = c;
    }
    for (std::size_t i = 0; i < 256; ++i) {
        for (std::size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    }
    return t;
}

constexpr crc_tables crc_table = make_crc_tables();

std::uint32_t load_le32(const unsigned char* p) {
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
}

constexpr std::uint32_t crc32c_initial = 0xFFFFFFFFu;

std::uint32_t crc32c_update_table(std::uint32_t crc, std::string_view bytes) {
    auto p = reinterpret_cast<const unsigned char*>(bytes.data());
    std::size_t n = bytes.size();
    for (; n >= 8; p += 8, n -= 8) {
        std::uint32_t lo = load_le32(p) ^ crc;
        std::uint32_t hi = load_le32(p + 4);
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^
              crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
              crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
    }
    for (; n > 0; ++p, --n) crc = crc_table[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
// SSE4.2's crc32 instruction computes this very CRC, several times faster
// than the tables: checking the whole journal at open was a twelfth of the
// start-up CPU with 10,000 services.
__attribute__((target("sse4.2"))) std::uint32_t crc32c_update_sse42(std::uint32_t crc, std::string_view bytes) {
    const char* p = bytes.data();
    std::size_t n = bytes.size();
    std::uint64_t wide = crc;
    for (; n >= 8; p += 8, n -= 8) {
        std::uint64_t word;
        std::memcpy(&word, p, 8);
        wide = _mm_crc32_u64(wide, word);
    }
    crc = static_cast<std::uint32_t>(wide);
    for (; n > 0; ++p, --n) crc = _mm_crc32_u8(crc, static_cast<unsigned char>(*p));
    return crc;
}
#endif

// Feeds `bytes` to a running CRC-32C; crc32c_final(state) is the checksum.
std::uint32_t crc32c_update(std::uint32_t crc, std::string_view bytes) {
#if defined(__x86_64__)
    static const bool has_sse42 = __builtin_cpu_supports("sse4.2");
    if (has_sse42) return crc32c_update_sse42(crc, bytes);
#endif
    return crc32c_update_table(crc, bytes);
}

std::uint32_t crc32c_final(std::uint32_t crc) { return ~crc; }

std::uint32_t crc32c(std::string_view bytes) { return crc32c_final(crc32c_update(crc32c_initial, bytes)); }

void store_le(char* out, std::uint64_t value, std::size_t width) {
    for (std::size_t i = 0; i < width; ++i) out[i] = static_cast<char>(value >> (8 * i));
}

void append_le(std::string& out, std::uint64_t value, std::size_t width) {
    char bytes[8];
    store_le(bytes, value, width);
    out.append(bytes, width);
}

void append_u32(std::string& out, std::uint32_t value) { append_le(out, value, 4); }
void append_u64(std::string& out, std::uint64_t value) { append_le(out, value, 8); }

void append_bytes(std::string& out, std::string_view bytes) {
    append_u32(out, static_cast<std::uint32_t>(bytes.size()));
    out.append(bytes);
}

// Reads little-endian fields; running past the end sets failed() and yields
// zeros, so parsers check once at the end instead of after every field.
// offset() is where the next field lies in the file the bytes come from,
// given where they start (`file_offset`).
class byte_reader {
public:
    explicit byte_reader(std::string_view bytes, std::uint64_t file_offset = 0)
        : rest_(bytes), end_offset_(file_offset + bytes.size()) {}

    std::uint8_t u8() { return static_cast<std::uint8_t>(le(1)); }
    std::uint32_t u32() { return static_cast<std::uint32_t>(le(4)); }
    std::uint64_t u64() { return le(8); }
    std::string_view bytes(std::size_t n) {
        if (n > rest_.size()) {
            failed_ = true;
            rest_ = {};
            return {};
        }
        std::string_view taken = rest_.substr(0, n);
        rest_.remove_prefix(n);
        return taken;
    }
    std::string_view sized_bytes() { return bytes(u32()); }

    bool failed() const noexcept { return failed_; }
    bool at_end() const noexcept { return !failed_ && rest_.empty(); }
    std::uint64_t offset() const noexcept { return end_offset_ - rest_.size(); }

private:
    std::uint64_t le(std::size_t width) {
        std::string_view b = bytes(width);
        std::uint64_t value = 0;
        for (std::size_t i = 0; i < b.size(); ++i) value |= std::uint64_t{static_cast<unsigned char>(b[i])} << (8 * i);
        return value;
    }

    std::string_view rest_;
    std::uint64_t end_offset_;
    bool failed_ = false;
};

[[noreturn]] void throw_system_error(std::string_view what, const fs::path& path, int err) {
    throw store_error("file_store: " + std::string(what) + " " + path.string() + ": " + std::strerror(err));
}

[[noreturn]] void throw_corrupt(const fs::path& path, std::string_view why) {
    throw store_error("file_store: " + path.string() + " is corrupt: " + std::string(why));
}

class unique_fd {
public:
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }

private:
    int fd_;
};

unique_fd open_file(const fs::path& path, int flags) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0) throw_system_error("open", path, errno);
    return unique_fd(fd);
}

void write_all(int fd, std::string_view bytes, std::uint64_t offset, const fs::path& path) {
    while (!bytes.empty()) {
        ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_system_error("write", path, errno);
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
    }
}

// A whole file, mapped read-only for as long as one operation reads it (open,
// state(), compaction). Mapping it (populated in one go) instead of read()
// into a zero-filled string saves the zeroing, the copy and a page fault per
// page of a fresh buffer, a fifth of the start-up CPU with 10,000 services.
// The store holds the directory's lock, so nobody truncates the file while it
// is mapped.
class mapped_file {
public:
    mapped_file(int fd, const fs::path& path) {
        struct stat st {};
        if (::fstat(fd, &st) != 0) throw_system_error("stat", path, errno);
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ == 0) return;  // mmap refuses an empty range
        void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED) throw_system_error("mmap", path, errno);
        data_ = static_cast<const char*>(p);
    }
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;
    ~mapped_file() { unmap(); }

    std::string_view bytes() const noexcept { return {data_, size_}; }

    void unmap() noexcept {
        if (data_) ::munmap(const_cast<char*>(data_), size_);
        data_ = nullptr;
        size_ = 0;
    }

private:
    const char* data_ = nullptr;
    std::size_t size_ = 0;
};

// Writes a new file front to back through a bounded buffer, so compaction
// never holds a whole snapshot in memory, and checksums what it writes after
// its first `unchecked` bytes.
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

    void append_le(std::uint64_t value, std::size_t width) {
        char bytes[8];
        store_le(bytes, value, width);
        append(std::string_view(bytes, width));
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

void encode_record(std::string& out, std::uint64_t sequence, std::span<const store_batch> batches) {
    out.assign(record_header_size, '\0');
    append_u32(out, static_cast<std::uint32_t>(batches.size()));
    for (const store_batch& batch : batches) {
        append_u64(out, batch.revision);
        append_u32(out, static_cast<std::uint32_t>(batch.mutations.size()));
        for (const store_mutation& m : batch.mutations) {
            out.push_back(static_cast<char>(m.value ? kind_put : kind_erase));
            append_bytes(out, m.key);
            if (m.value) append_bytes(out, *m.value);
        }
    }
    std::size_t payload = out.size() - record_header_size;
    if (payload > UINT32_MAX) throw store_error("file_store: a single append exceeds 4 GiB");
    store_le(out.data() + 4, payload, 4);
    store_le(out.data() + 8, sequence, 8);
    store_le(out.data(), crc32c(std::string_view(out).substr(4)), 4);
}

struct record_frame {
    std::uint64_t sequence;
    std::string_view payload;
    std::size_t end;  // offset just past the record
};

// The record at `offset` if it is whole and its checksum matches.
std::optional<record_frame> read_record(std::string_view journal, std::size_t offset) {
    if (journal.size() - offset < record_header_size) return std::nullopt;
    byte_reader header(journal.substr(offset, record_header_size));
    std::uint32_t crc = header.u32();
    std::uint32_t length = header.u32();
    std::uint64_t sequence = header.u64();
    if (length > journal.size() - offset - record_header_size) return std::nullopt;
    std::string_view covered = journal.substr(offset + 4, record_header_size - 4 + length);
    if (crc32c(covered) != crc) return std::nullopt;
    return record_frame{sequence, covered.substr(record_header_size - 4), offset + record_header_size + length};
}

// Where the damaged record at `offset` would end, judging by its length field.
std::size_t claimed_end(std::string_view journal, std::size_t offset) {
    if (journal.size() - offset < record_header_size) return journal.size();
    byte_reader header(journal.substr(offset + 4, 4));
    return offset + record_header_size + header.u32();
}

std::string journal_header() {
    std::string header(journal_magic);
    append_u32(header, format_version);
    return header;
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

std::uint64_t file_store::visit(std::string_view prefix, const store_visitor& each) const {
    std::optional<mapped_file> snapshot;  // mapped once a value in it is asked for
    std::optional<mapped_file> journal;
    for (auto it = entries_.lower_bound(prefix); it != entries_.end() && it->first.starts_with(prefix); ++it) {
        const value_location& at = it->second;
        std::optional<mapped_file>& file = at.in_snapshot ? snapshot : journal;
        if (!file) file.emplace(at.in_snapshot ? snapshot_fd_ : journal_fd_, dir_ / (at.in_snapshot ? "snapshot" : "journal"));
        each(it->first, file->bytes().substr(at.offset, at.length));
    }
    return revision_;
}

store_state file_store::state(std::string_view prefix) const {
    store_state s;
    s.revision = visit(prefix, [&s](std::string_view key, std::string_view value) { s.entries.emplace_back(key, value); });
    return s;
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

void file_store::apply_record(std::string_view payload, std::uint64_t payload_offset, const fs::path& path) {
    byte_reader reader(payload, payload_offset);
    std::uint32_t batches = reader.u32();
    for (std::uint32_t b = 0; b < batches && !reader.failed(); ++b) {
        std::uint64_t revision = reader.u64();
        std::uint32_t mutations = reader.u32();
        for (std::uint32_t m = 0; m < mutations && !reader.failed(); ++m) {
            std::uint8_t kind = reader.u8();
            std::string_view key = reader.sized_bytes();
            if (kind == kind_put) {
                std::string_view value = reader.sized_bytes();
                if (reader.failed()) break;
                const value_location at{reader.offset() - value.size(), static_cast<std::uint32_t>(value.size()), false};
                if (auto it = entries_.lower_bound(key); it != entries_.end() && it->first == key) {
                    it->second = at;
                } else {
                    entries_.emplace_hint(it, key, at);
                }
            } else if (kind == kind_erase) {
                if (reader.failed()) break;
                if (auto it = entries_.find(key); it != entries_.end()) entries_.erase(it);
            } else {
                throw_corrupt(path, "unknown mutation kind " + std::to_string(kind));
            }
        }
        revision_ = std::max(revision_, revision);
    }
    // The checksum matched, so a malformed payload is not a torn write.
    if (!reader.at_end()) throw_corrupt(path, "malformed record payload");
}

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
