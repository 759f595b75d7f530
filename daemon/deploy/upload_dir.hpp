// registryd's upload_files port: each package upload is a file
// {dir}/{upload_id}.tar.gz, appended to on a blocking_runner thread and
// hashed as it is written (OpenSSL SHA-256), so the digest is ready when the
// last chunk lands. The directory belongs to registryd: what an earlier run
// left in it is deleted at start (uploads do not survive a restart).
#pragma once

#include "runtime/blocking_runner.hpp"

#include <registry/ports/upload_files.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

namespace registryd {

class upload_dir final : public registry::upload_files {
public:
    // Creates `dir` (or empties it). Throws std::runtime_error when it cannot.
    upload_dir(blocking_runner& runner, std::filesystem::path dir);
    ~upload_dir() override;

    registry::task<registry::result<void>> create(std::string id) override;
    registry::task<registry::result<void>> append(std::string id, std::string data) override;
    registry::task<registry::result<std::string>> sha256(std::string id) override;
    std::filesystem::path path(const std::string& id) const override;
    void remove(const std::string& id) override;

    struct file;  // the open descriptor and the running digest

private:
    blocking_runner& runner_;
    std::filesystem::path dir_;
    // Touched on the io thread only; a job holds its file by shared_ptr.
    std::map<std::string, std::shared_ptr<file>> files_;
};

}  // namespace registryd
