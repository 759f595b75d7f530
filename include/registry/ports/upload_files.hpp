// The upload-files port: where the bytes of a package uploaded over the
// protocol (package_upload_begin / package_upload_chunk) go, one file per
// upload, and the sha256 of what was written. registryd keeps them under its
// data directory and hashes as it appends (OpenSSL); a test keeps them in
// memory. The package_uploads state machine (deploy/package_uploads.hpp)
// never has two operations on one upload in flight.
#pragma once

#include <registry/result.hpp>
#include <registry/task.hpp>

#include <filesystem>
#include <string>

namespace registry {

class upload_files {
public:
    virtual ~upload_files() = default;

    // Creates the empty file of upload `id`.
    virtual task<result<void>> create(std::string id) = 0;
    // Appends `data` to it.
    virtual task<result<void>> append(std::string id, std::string data) = 0;
    // The sha256 of everything appended, 64 lowercase hex digits.
    virtual task<result<std::string>> sha256(std::string id) = 0;
    // Where the file is, for unpacking it.
    virtual std::filesystem::path path(const std::string& id) const = 0;
    // Deletes the file and forgets the upload.
    virtual void remove(const std::string& id) = 0;
};

}  // namespace registry
