// The random port on the kernel's CSPRNG (getrandom(2)): upload and execution
// ids. It blocks only until the pool is initialised at boot; a failure other
// than an interruption ends the process rather than hand out guessable ids.
#pragma once

#include <registry/ports/random.hpp>

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace registryd {

class os_random final : public registry::random_source {
public:
    void fill(std::span<std::byte> out) override {
        std::size_t done = 0;
        while (done < out.size()) {
            const ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                std::perror("registryd: getrandom");
                std::abort();
            }
            done += static_cast<std::size_t>(n);
        }
    }
};

}  // namespace registryd
