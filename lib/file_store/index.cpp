// The in-memory index (where each key's latest value lies) and the reads that
// go through it.
#include <registry/file_store.hpp>

#include "byte_io.hpp"
#include "files.hpp"
#include "format.hpp"

#include <optional>
#include <string>

namespace registry {

using namespace detail;
namespace fs = std::filesystem;

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

}  // namespace registry
