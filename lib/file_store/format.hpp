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
#pragma once

#include <registry/ports/store.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace registry::detail {

inline constexpr std::string_view journal_magic = "RGJOURNL";
inline constexpr std::string_view snapshot_magic = "RGSNAPSH";
inline constexpr std::uint32_t format_version = 1;
inline constexpr std::size_t journal_header_size = 12;
inline constexpr std::size_t record_header_size = 16;
inline constexpr std::size_t snapshot_header_size = 16;
inline constexpr std::uint8_t kind_erase = 0;
inline constexpr std::uint8_t kind_put = 1;

// Encodes `batches` as the journal record `sequence` into `out` (reused, so an
// append does not allocate).
void encode_record(std::string& out, std::uint64_t sequence, std::span<const store_batch> batches);

struct record_frame {
    std::uint64_t sequence;
    std::string_view payload;
    std::size_t end;  // offset just past the record
};

// The record at `offset` if it is whole and its checksum matches.
std::optional<record_frame> read_record(std::string_view journal, std::size_t offset);

// Where the damaged record at `offset` would end, judging by its length field.
std::size_t claimed_end(std::string_view journal, std::size_t offset);

// The bytes a journal starts with.
std::string journal_header();

}  // namespace registry::detail
