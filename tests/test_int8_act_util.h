// Integer-activation inputs shared by the W8A8 and W4A8 kernel tests.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/w8a8.h"

namespace lowbit::testing {

// Three tokens of `cols` values at the ends of the INT8 range: all q = 127, all
// q = -127, and alternating +127 / -127 (each token's scale is 1/127).
inline Int8Activations extreme_int8_activations(int64_t cols, int64_t cols_padded) {
  const int64_t tokens = 3;
  std::vector<float> x(static_cast<size_t>(tokens * cols));  // [tokens, cols]
  for (int64_t c = 0; c < cols; ++c) {
    x[c] = 1.0f;
    x[cols + c] = -1.0f;
    x[2 * cols + c] = (c % 2) ? -1.0f : 1.0f;
  }
  Int8Activations a;
  quantize_activations_int8(x.data(), tokens, cols, cols_padded, a);
  return a;
}

}  // namespace lowbit::testing
