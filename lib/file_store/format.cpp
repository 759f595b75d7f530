// The journal record: its encoding, and reading it back checked.
#include "format.hpp"

#include "byte_io.hpp"
#include "crc32c.hpp"

#include <cstdint>

namespace registry::detail {

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

}  // namespace registry::detail
