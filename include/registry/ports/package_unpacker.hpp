// The package-unpacker port: decides which host paths a client may deploy
// from, and runs deploy::unpack_package (blocking file I/O)
// where blocking is fine and resumes the caller on the embedder's event loop.
// registryd runs it on a worker thread; a test may call it inline.
#pragma once

#include <registry/deploy/package_archive.hpp>
#include <registry/task.hpp>

namespace registry {

class package_unpacker {
public:
    virtual ~package_unpacker() = default;
    // A path a client named (deploy_package's path form), checked against
    // what the embedder allows (registryd: deploy.package_dirs); the path to
    // unpack, or errc::forbidden.
    virtual result<std::filesystem::path> admit(const std::filesystem::path& requested) = 0;
    virtual task<result<deploy::unpacked_package>> unpack(deploy::unpack_request request) = 0;
    // Removes a staging directory unpack() made (it is no longer needed).
    virtual void discard(const std::filesystem::path& staging) = 0;
};

}  // namespace registry
