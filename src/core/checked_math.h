// Overflow-checked integer arithmetic for sizes read from files. A loader
// multiplies dimensions a file claims; a product that does not fit is a
// malformed file, not undefined behaviour.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace lowbit {

// a * b, or nullopt when the exact product does not fit in T.
template <typename T>
constexpr std::optional<T> checked_mul(T a, T b) {
  T product{};
  if (__builtin_mul_overflow(a, b, &product)) return std::nullopt;
  return product;
}

// Product of all dims, checking every partial product (so [2^62, 3, 0] is an
// overflow, not 0); nullopt on overflow or a negative dim. Empty dims give 1.
constexpr std::optional<int64_t> checked_product(std::span<const int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return std::nullopt;
    const std::optional<int64_t> next = checked_mul(n, d);
    if (!next) return std::nullopt;
    n = *next;
  }
  return n;
}

}  // namespace lowbit
