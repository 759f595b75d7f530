// A random port for tests: a fixed-seed generator (splitmix64), so that a
// test sees the same ids on every run, and ids that are not sequential.
#pragma once

#include <registry/ports/random.hpp>

#include <cstdint>

namespace registry::testing {

class fake_random final : public random_source {
public:
    explicit fake_random(std::uint64_t seed = 0x5eed) : state_(seed) {}

    void fill(std::span<std::byte> out) override {
        for (std::size_t i = 0; i < out.size(); i += 8) {
            std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            z ^= z >> 31;
            for (std::size_t k = 0; k < 8 && i + k < out.size(); ++k) {
                out[i + k] = std::byte(static_cast<unsigned char>(z >> (8 * k)));
            }
        }
    }

private:
    std::uint64_t state_;
};

}  // namespace registry::testing
