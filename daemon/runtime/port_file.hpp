// `--port-file`: where registryd writes the address it listens on.
#pragma once

#include <filesystem>
#include <string>

namespace registryd {

// Writes "HOST:PORT\n" to `file` atomically: a temporary file in the same
// directory, then rename(2), so a reader never sees a partial file. Throws
// std::runtime_error when it cannot.
void write_port_file(const std::filesystem::path& file, const std::string& addr);

}  // namespace registryd
