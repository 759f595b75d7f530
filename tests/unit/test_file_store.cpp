#include <registry/file_store.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using registry::file_store;
using registry::file_store_options;
using registry::file_store_step;
using registry::store_batch;
using registry::store_error;
using registry::store_mutation;

// A fresh directory under /tmp, removed with everything in it.
class temp_dir {
public:
    temp_dir() {
        std::string pattern = (fs::temp_directory_path() / "file_store_test.XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

// What the store should contain: the batches applied in order.
struct model {
    std::map<std::string, std::string> data;
    std::uint64_t revision = 0;

    void apply(const store_batch& batch) {
        for (const auto& m : batch.mutations) {
            if (m.value) {
                data[m.key] = *m.value;
            } else {
                data.erase(m.key);
            }
        }
        if (batch.revision > revision) revision = batch.revision;
    }
};

void check_state(const file_store& store, const model& expected) {
    registry::store_state state = store.state();
    CHECK(state.revision == expected.revision);
    CHECK(state.entries == std::vector<std::pair<std::string, std::string>>(expected.data.begin(), expected.data.end()));
}

std::unique_ptr<file_store> open_store(const fs::path& dir, file_store_options options = {}) {
    auto opened = file_store::open(dir, std::move(options));
    REQUIRE_MESSAGE(opened.ok(), (opened.ok() ? "" : opened.err().message));
    return std::move(opened).value();
}

// Batch i puts a key, overwrites an older one and erases another; revisions
// advance every other batch, as lease renewals share a revision.
store_batch numbered_batch(int i) {
    store_batch batch;
    batch.revision = static_cast<std::uint64_t>(i / 2 + 1);
    batch.mutations.push_back({"key/" + std::to_string(i), "value " + std::to_string(i)});
    batch.mutations.push_back({"key/" + std::to_string(i / 2), "overwritten by " + std::to_string(i)});
    if (i % 3 == 2) batch.mutations.push_back({"key/" + std::to_string(i - 2), std::nullopt});
    return batch;
}

void append_one(file_store& store, model& expected, const store_batch& batch) {
    store.append(std::span(&batch, 1));
    expected.apply(batch);
}

std::string read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A small threshold, so a test sees compactions after a few appends.
file_store_options compacting_every(std::uint64_t bytes) {
    file_store_options options;
    options.compact_journal_bytes = bytes;
    return options;
}

}  // namespace

TEST_CASE("file_store: appended batches make up the state") {
    temp_dir dir;
    auto store = open_store(dir.path());
    model expected;
    check_state(*store, expected);

    for (int i = 0; i < 10; ++i) append_one(*store, expected, numbered_batch(i));
    std::vector<store_batch> group{numbered_batch(10), numbered_batch(11), numbered_batch(12)};
    store->append(group);
    for (const auto& b : group) expected.apply(b);
    store->append({});

    check_state(*store, expected);
    CHECK(store->stats().fsyncs >= 11);
}

TEST_CASE("file_store: one append is one fdatasync however many batches it holds") {
    temp_dir dir;
    auto store = open_store(dir.path());
    std::uint64_t before = store->stats().fsyncs;
    std::vector<store_batch> group;
    for (int i = 0; i < 100; ++i) group.push_back(numbered_batch(i));
    store->append(group);
    CHECK(store->stats().fsyncs == before + 1);
}

TEST_CASE("file_store: reopening restores everything") {
    temp_dir dir;
    model expected;
    {
        auto store = open_store(dir.path());
        for (int i = 0; i < 50; ++i) append_one(*store, expected, numbered_batch(i));
    }
    auto store = open_store(dir.path());
    check_state(*store, expected);
    CHECK(store->stats().recovery.records_replayed == 50);
    CHECK(store->stats().recovery.truncated_tail_bytes == 0);
    CHECK_FALSE(store->stats().recovery.snapshot_loaded);

    append_one(*store, expected, numbered_batch(50));
    store.reset();
    check_state(*open_store(dir.path()), expected);
}

TEST_CASE("file_store: a torn last record is cut off at every length") {
    temp_dir dir;
    model before_last;
    std::string full;
    std::uint64_t last_start = 0;
    {
        auto store = open_store(dir.path());
        for (int i = 0; i < 5; ++i) append_one(*store, before_last, numbered_batch(i));
        last_start = store->stats().journal_bytes;
        model ignored = before_last;
        append_one(*store, ignored, numbered_batch(5));
    }
    const fs::path journal = dir.path() / "journal";
    full = read_bytes(journal);
    REQUIRE(full.size() > last_start);

    for (std::size_t cut = last_start; cut < full.size(); ++cut) {
        CAPTURE(cut);
        for (bool zero_padded : {false, true}) {
            // Zero padding: the file grew but the data never reached the disk.
            std::string torn = full.substr(0, cut);
            if (zero_padded) torn.resize(full.size(), '\0');
            write_bytes(journal, torn);
            auto store = open_store(dir.path());
            check_state(*store, before_last);
            CHECK(store->stats().recovery.truncated_tail_bytes == torn.size() - last_start);
            CHECK(fs::file_size(journal) == last_start);
        }
    }
}

TEST_CASE("file_store: a flipped byte in the last record drops only that record") {
    temp_dir dir;
    model before_last;
    std::uint64_t last_start = 0;
    {
        auto store = open_store(dir.path());
        for (int i = 0; i < 5; ++i) append_one(*store, before_last, numbered_batch(i));
        last_start = store->stats().journal_bytes;
        model ignored = before_last;
        append_one(*store, ignored, numbered_batch(5));
    }
    const fs::path journal = dir.path() / "journal";
    const std::string full = read_bytes(journal);

    for (std::size_t at = last_start; at < full.size(); ++at) {
        CAPTURE(at);
        std::string damaged = full;
        damaged[at] = static_cast<char>(damaged[at] ^ 0x40);
        write_bytes(journal, damaged);
        auto store = open_store(dir.path());
        check_state(*store, before_last);
        CHECK(store->stats().recovery.truncated_tail_bytes == full.size() - last_start);
    }
}

TEST_CASE("file_store: a damaged record followed by valid ones is an error, not a tail") {
    temp_dir dir;
    std::uint64_t second_start = 0;
    {
        auto store = open_store(dir.path());
        model ignored;
        append_one(*store, ignored, numbered_batch(0));
        second_start = store->stats().journal_bytes;
        for (int i = 1; i < 4; ++i) append_one(*store, ignored, numbered_batch(i));
    }
    const fs::path journal = dir.path() / "journal";
    std::string damaged = read_bytes(journal);
    damaged[second_start + 20] = static_cast<char>(damaged[second_start + 20] ^ 1);  // in the payload
    write_bytes(journal, damaged);

    auto opened = file_store::open(dir.path(), {});
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.err().message.find("followed by valid") != std::string::npos);
    CHECK(read_bytes(journal) == damaged);  // nothing was cut
}

TEST_CASE("file_store: compaction writes a snapshot that reopening loads") {
    temp_dir dir;
    model expected;
    {
        auto store = open_store(dir.path(), compacting_every(1000));
        for (int i = 0; i < 100; ++i) append_one(*store, expected, numbered_batch(i));
        CHECK(store->stats().compactions > 3);
        CHECK(store->stats().journal_bytes <= 1000);
        check_state(*store, expected);
    }
    auto store = open_store(dir.path(), compacting_every(1000));
    check_state(*store, expected);
    CHECK(store->stats().recovery.snapshot_loaded);
    CHECK(store->stats().recovery.records_skipped == 0);

    for (int i = 100; i < 130; ++i) append_one(*store, expected, numbered_batch(i));
    store.reset();
    check_state(*open_store(dir.path()), expected);
}

TEST_CASE("file_store: a crash at any compaction step recovers the exact state") {
    const file_store_step steps[] = {
        file_store_step::snapshot_write,   file_store_step::snapshot_sync,    file_store_step::snapshot_rename,
        file_store_step::directory_sync,   file_store_step::journal_truncate, file_store_step::journal_truncate_sync,
    };
    for (file_store_step crash_at : steps) {
        CAPTURE(static_cast<int>(crash_at));
        temp_dir dir;
        model expected;
        bool armed = false;
        file_store_options options = compacting_every(1500);
        options.inject_fault = [&](file_store_step step) { return armed && step == crash_at; };
        {
            auto store = open_store(dir.path(), options);
            // Get a first snapshot in place, so the crash replaces an old one.
            int i = 0;
            while (store->stats().compactions == 0) append_one(*store, expected, numbered_batch(i++));
            armed = true;
            bool crashed = false;
            while (!crashed) {
                store_batch batch = numbered_batch(i++);
                try {
                    store->append(std::span(&batch, 1));
                } catch (const store_error&) {
                    crashed = true;
                }
                expected.apply(batch);  // durable either way: compaction starts after the journal sync
            }
            armed = false;
            store_batch after = numbered_batch(9999);
            CHECK_THROWS_AS(store->append(std::span(&after, 1)), store_error);  // poisoned
        }
        armed = false;
        {
            auto store = open_store(dir.path(), options);
            check_state(*store, expected);
            for (int i = 1000; i < 1040; ++i) append_one(*store, expected, numbered_batch(i));
        }
        check_state(*open_store(dir.path(), options), expected);
    }
}

TEST_CASE("file_store: hand-made crash layouts recover the exact state") {
    temp_dir dir;
    model expected;
    std::string untruncated_journal;
    file_store_options options = compacting_every(1500);
    // Keep the journal as it was just before compaction truncated it.
    options.inject_fault = [&](file_store_step step) {
        if (step == file_store_step::journal_truncate) untruncated_journal = read_bytes(dir.path() / "journal");
        return false;
    };
    {
        auto store = open_store(dir.path(), options);
        int i = 0;
        while (store->stats().compactions < 2) append_one(*store, expected, numbered_batch(i++));
    }
    REQUIRE_FALSE(untruncated_journal.empty());

    SUBCASE("leftover temporary files are ignored and removed") {
        write_bytes(dir.path() / "snapshot.tmp", "RGSNAPSH half a snapshot");
        write_bytes(dir.path() / "journal.tmp", "RGJO");
        auto store = open_store(dir.path());
        check_state(*store, expected);
        CHECK(store->stats().recovery.removed_temporary_files);
        CHECK_FALSE(fs::exists(dir.path() / "snapshot.tmp"));
        CHECK_FALSE(fs::exists(dir.path() / "journal.tmp"));
    }
    SUBCASE("a new snapshot next to the journal it replaced skips what it contains") {
        write_bytes(dir.path() / "journal", untruncated_journal);
        auto store = open_store(dir.path());
        check_state(*store, expected);
        CHECK(store->stats().recovery.records_replayed == 0);
        CHECK(store->stats().recovery.records_skipped > 0);

        // Sequence numbers carry on past the snapshot, so later records replay.
        for (int i = 500; i < 510; ++i) append_one(*store, expected, numbered_batch(i));
        store.reset();
        check_state(*open_store(dir.path()), expected);
    }
}

TEST_CASE("file_store: recovery refuses to start empty when data existed") {
    temp_dir dir;
    {
        auto store = open_store(dir.path(), compacting_every(1000));
        model ignored;
        int i = 0;
        while (store->stats().compactions == 0) append_one(*store, ignored, numbered_batch(i++));
        append_one(*store, ignored, numbered_batch(i));  // a journal record past the snapshot
    }
    const fs::path snapshot = dir.path() / "snapshot";
    const std::string good = read_bytes(snapshot);

    SUBCASE("damaged snapshot") {
        std::string damaged = good;
        damaged[damaged.size() / 2] = static_cast<char>(damaged[damaged.size() / 2] ^ 1);
        write_bytes(snapshot, damaged);
    }
    SUBCASE("truncated snapshot") { write_bytes(snapshot, good.substr(0, good.size() - 1)); }
    SUBCASE("snapshot from a newer format") {
        std::string newer = good;
        newer[8] = 2;
        write_bytes(snapshot, newer);
    }
    SUBCASE("missing snapshot") { fs::remove(snapshot); }
    SUBCASE("missing journal") { fs::remove(dir.path() / "journal"); }
    SUBCASE("journal without its header") { write_bytes(dir.path() / "journal", ""); }

    auto opened = file_store::open(dir.path(), {});
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.err().code == registry::errc::unavailable);
    CHECK(opened.err().message.find("is corrupt") != std::string::npos);
}

TEST_CASE("file_store: a failed write poisons the store") {
    temp_dir dir;
    model expected;
    bool failing = false;
    file_store_options options;
    options.inject_fault = [&](file_store_step step) { return failing && step == file_store_step::journal_write; };
    {
        auto store = open_store(dir.path(), options);
        append_one(*store, expected, numbered_batch(0));
        failing = true;
        store_batch lost = numbered_batch(1);
        CHECK_THROWS_AS(store->append(std::span(&lost, 1)), store_error);
        failing = false;
        CHECK_THROWS_AS(store->append(std::span(&lost, 1)), store_error);
        check_state(*store, expected);
    }
    check_state(*open_store(dir.path()), expected);
}

TEST_CASE("file_store: a failed sync poisons the store") {
    temp_dir dir;
    bool failing = false;
    file_store_options options;
    options.inject_fault = [&](file_store_step step) { return failing && step == file_store_step::journal_sync; };
    auto store = open_store(dir.path(), options);
    model ignored;
    append_one(*store, ignored, numbered_batch(0));
    failing = true;
    store_batch batch = numbered_batch(1);
    CHECK_THROWS_AS(store->append(std::span(&batch, 1)), store_error);
    failing = false;
    CHECK_THROWS_AS(store->append(std::span(&batch, 1)), store_error);
}

TEST_CASE("file_store: a locked directory cannot be opened twice") {
    temp_dir dir;
    auto first = open_store(dir.path());
    auto second = file_store::open(dir.path(), {});
    REQUIRE_FALSE(second.ok());
    CHECK(second.err().message.find("in use") != std::string::npos);
    first.reset();
    CHECK(file_store::open(dir.path(), {}).ok());
}

TEST_CASE("file_store: open creates a missing directory") {
    temp_dir dir;
    const fs::path nested = dir.path() / "a" / "b";
    model expected;
    {
        auto store = open_store(nested);
        append_one(*store, expected, numbered_batch(0));
    }
    check_state(*open_store(nested), expected);
}

TEST_CASE("file_store: a large state reopens intact") {
    temp_dir dir;
    model expected;
    const std::uint64_t thresholds[] = {8u << 20, 64u << 10};
    for (std::uint64_t threshold : thresholds) {
        CAPTURE(threshold);
        {
            auto store = open_store(dir.path(), compacting_every(threshold));
            for (int b = 0; b < 20; ++b) {
                store_batch batch;
                batch.revision = expected.revision + 1;
                for (int k = 0; k < 500; ++k) {
                    int key = b * 500 + k;
                    batch.mutations.push_back(
                        {"/services/svc-" + std::to_string(key % 97) + "/instance-" + std::to_string(key),
                         std::string(64, static_cast<char>('a' + key % 26)) + std::to_string(threshold)});
                }
                append_one(*store, expected, batch);
            }
        }
        REQUIRE(expected.data.size() == 10000);
        check_state(*open_store(dir.path(), compacting_every(threshold)), expected);
    }
}

TEST_CASE("file_store: compaction after many overwrites and deletes keeps only the live values") {
    temp_dir dir;
    model expected;
    {
        auto store = open_store(dir.path(), compacting_every(4096));
        // Twenty keys rewritten over and over with values of changing sizes,
        // every third write of a key erasing it instead: values move between
        // the journal and successive snapshots many times.
        for (int i = 0; i < 600; ++i) {
            store_batch batch;
            batch.revision = expected.revision + 1;
            const std::string key = "k/" + std::to_string(i % 20);
            if (i % 3 == 2) {
                batch.mutations.push_back({key, std::nullopt});
            } else {
                batch.mutations.push_back({key, std::string(static_cast<std::size_t>(1 + i % 50), 'a' + i % 26)});
            }
            append_one(*store, expected, batch);
            if (i % 50 == 0) check_state(*store, expected);
        }
        CHECK(store->stats().compactions > 5);
        check_state(*store, expected);
    }
    // The snapshot holds at most the twenty live values, not the history.
    CHECK(fs::file_size(dir.path() / "snapshot") <= 16 + 24 + 20 * (8 + 4 + 50));
    auto store = open_store(dir.path(), compacting_every(4096));
    check_state(*store, expected);
    CHECK(store->stats().recovery.snapshot_loaded);
}

TEST_CASE("file_store: values larger than the compaction buffer survive compaction") {
    temp_dir dir;
    model expected;
    {
        auto store = open_store(dir.path(), compacting_every(100 << 10));
        for (int i = 0; i < 6; ++i) {
            store_batch batch;
            batch.revision = expected.revision + 1;
            batch.mutations.push_back({"big/" + std::to_string(i), std::string((200 << 10) + i, 'A' + i)});
            batch.mutations.push_back({"small/" + std::to_string(i), "v" + std::to_string(i)});
            append_one(*store, expected, batch);
        }
        CHECK(store->stats().compactions >= 3);
        check_state(*store, expected);
    }
    check_state(*open_store(dir.path()), expected);
}

TEST_CASE("file_store: a torn journal tail after compaction is cut off and the snapshot's values stay") {
    temp_dir dir;
    model before_last;
    std::uint64_t last_start = 0;
    {
        auto store = open_store(dir.path(), compacting_every(1500));
        int i = 0;
        while (store->stats().compactions < 2) append_one(*store, before_last, numbered_batch(i++));
        append_one(*store, before_last, numbered_batch(i++));  // one record after the snapshot
        last_start = store->stats().journal_bytes;
        model ignored = before_last;
        append_one(*store, ignored, numbered_batch(i));
    }
    const fs::path journal = dir.path() / "journal";
    const std::string full = read_bytes(journal);
    REQUIRE(full.size() > last_start + 20);
    write_bytes(journal, full.substr(0, last_start + 20));

    {
        auto store = open_store(dir.path(), compacting_every(1500));
        CHECK(store->stats().recovery.snapshot_loaded);
        CHECK(store->stats().recovery.truncated_tail_bytes == 20);
        CHECK(store->stats().recovery.records_replayed == 1);
        check_state(*store, before_last);
        // Writing on, through the next compaction, reads the values back from
        // the snapshot recovery found.
        for (int i = 500; i < 540; ++i) append_one(*store, before_last, numbered_batch(i));
        CHECK(store->stats().compactions > 0);
        check_state(*store, before_last);
    }
    check_state(*open_store(dir.path()), before_last);
}

TEST_CASE("file_store: state(prefix) returns only the entries under the prefix") {
    temp_dir dir;
    auto store = open_store(dir.path(), compacting_every(512));
    store_batch first;
    first.revision = 1;
    for (const char* key : {"a", "ctr-next-lease", "ctr/1", "ctr/2", "svc/x", "svc/y", "svc0", "z"}) {
        first.mutations.push_back({key, std::string(100, key[0])});
    }
    store->append(std::span(&first, 1));
    REQUIRE(store->stats().compactions == 1);  // these values now lie in the snapshot
    store_batch second;
    second.revision = 2;
    second.mutations.push_back({"svc/y", "in the journal"});
    second.mutations.push_back({"svc/x", std::nullopt});
    store->append(std::span(&second, 1));

    using entries = std::vector<std::pair<std::string, std::string>>;
    const registry::store_state svc = store->state("svc/");
    CHECK(svc.revision == 2);
    CHECK(svc.entries == entries{{"svc/y", "in the journal"}});
    CHECK(store->state("ctr").entries ==
          entries{{"ctr-next-lease", std::string(100, 'c')}, {"ctr/1", std::string(100, 'c')}, {"ctr/2", std::string(100, 'c')}});
    CHECK(store->state("none/").entries.empty());
    CHECK(store->state().entries.size() == 7);
}

namespace {

// CRC-32C bit by bit, independent of the store's own (table or crc32
// instruction) implementation.
std::uint32_t reference_crc32c(std::string_view bytes) {
    std::uint32_t crc = 0xFFFFFFFFu;
    for (unsigned char c : bytes) {
        crc ^= c;
        for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

void append_le(std::string& out, std::uint64_t value, int width) {
    for (int i = 0; i < width; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}

}  // namespace

TEST_CASE("file_store: opens a snapshot and journal written by hand with the CRC-32C of the format") {
    REQUIRE(reference_crc32c("123456789") == 0xE3069283u);  // the published check value
    temp_dir dir;
    // The snapshot: revision 7, through record 2, one entry of 300 bytes (so
    // the checksum runs over whole words and a tail).
    std::string body;
    append_le(body, 7, 8);
    append_le(body, 2, 8);
    append_le(body, 1, 8);
    append_le(body, 5, 4);
    body += "svc/a";
    append_le(body, 300, 4);
    body += std::string(300, 'x');
    std::string snapshot = "RGSNAPSH";
    append_le(snapshot, 1, 4);
    append_le(snapshot, reference_crc32c(body), 4);
    write_bytes(dir.path() / "snapshot", snapshot + body);

    // The journal: record 3 puts svc/b at revision 8.
    std::string payload;
    append_le(payload, 1, 4);
    append_le(payload, 8, 8);
    append_le(payload, 1, 4);
    payload.push_back(1);
    append_le(payload, 5, 4);
    payload += "svc/b";
    append_le(payload, 3, 4);
    payload += "new";
    std::string covered;
    append_le(covered, payload.size(), 4);
    append_le(covered, 3, 8);
    covered += payload;
    std::string journal = "RGJOURNL";
    append_le(journal, 1, 4);
    append_le(journal, reference_crc32c(covered), 4);
    write_bytes(dir.path() / "journal", journal + covered);

    auto store = open_store(dir.path());
    CHECK(store->stats().recovery.snapshot_loaded);
    CHECK(store->stats().recovery.records_replayed == 1);
    CHECK(store->stats().recovery.truncated_tail_bytes == 0);
    const registry::store_state state = store->state();
    CHECK(state.revision == 8);
    CHECK(state.entries ==
          std::vector<std::pair<std::string, std::string>>{{"svc/a", std::string(300, 'x')}, {"svc/b", "new"}});
}
