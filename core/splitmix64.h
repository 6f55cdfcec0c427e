// SplitMix64: the project's portable pseudo-random numbers (sample orders, per-step generator seeds).
#pragma once

#include <cstdint>

namespace dpt {

// splitmix64 (Steele, Lea, Flood 2014): tiny, well mixed, and fully specified, so what it drives never depends on
// the standard library's distributions, which differ between implementations.
struct SplitMix64 {
  std::uint64_t state;

  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, bound) without modulo bias: reject the top partial range.
  std::uint64_t below(std::uint64_t bound) {
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    std::uint64_t x = next();
    while (x >= limit) x = next();
    return x % bound;
  }
};

}  // namespace dpt
