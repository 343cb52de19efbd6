// splitmix64 (Steele, Lea, Flood 2014): a portable stream of 64-bit values, the
// same on every platform and standard library (unlike <random>'s distributions),
// for seeded draws whose results tests and files depend on.
#pragma once

#include <cstdint>

namespace lowbit {

struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1): 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in (0, 1]: never 0, for log() in Box-Muller.
  double uniform_positive() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }
};

}  // namespace lowbit
