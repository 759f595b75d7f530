// An upload_files port for tests: the files are strings in a map. Its digest
// is NOT SHA-256 but a 64-hex-digit FNV-1a stand-in (fake_digest): the upload
// state machine only compares digests, registryd's port computes the real one.
#pragma once

#include <registry/ports/upload_files.hpp>

#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <string_view>

namespace registry::testing {

inline std::string fake_digest(std::string_view content) {
    std::string out;
    std::uint64_t h = 1469598103934665603ull;
    for (int round = 0; round < 4; ++round) {
        for (unsigned char c : content) h = (h ^ c) * 1099511628211ull;
        h = (h ^ static_cast<unsigned>(round)) * 1099511628211ull;
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
        out += buf;
    }
    return out;
}

class memory_upload_files final : public upload_files {
public:
    std::map<std::string, std::string> files;  // by upload id
    std::set<std::string> removed;

    task<result<void>> create(std::string id) override {
        files[id];
        co_return result<void>{};
    }
    task<result<void>> append(std::string id, std::string data) override {
        files.at(id) += data;
        co_return result<void>{};
    }
    task<result<std::string>> sha256(std::string id) override { co_return fake_digest(files.at(id)); }
    std::filesystem::path path(const std::string& id) const override { return "/uploads/" + id + ".tar.gz"; }
    void remove(const std::string& id) override {
        files.erase(id);
        removed.insert(id);
    }
};

}  // namespace registry::testing
