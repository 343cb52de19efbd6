// Integer-activation inputs and packed weights shared by the W8A8, W4A8 and AMX
// kernel tests.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/w8a8.h"
#include "model/packed_convert.h"
#include "quant/quantized_weight.h"
#include "test_quant_util.h"
#include "test_trellis_util.h"

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

// A seeded N(0, 0.05²) [rows, cols] weight quantized to `format` and packed
// (trellis formats: random codes of that spread, test_trellis_util.h).
inline PackedMatrix packed_weight(const char* format, int64_t rows, int64_t cols, uint64_t seed) {
  if (is_trellis_format_name(format)) {
    return std::move(pack_quantized_weight(random_trellis_weight(format, rows, cols, seed))).value();
  }
  const std::vector<float> w = gaussian(rows, cols, seed, 0.05f);
  QuantizedWeight q;
  q.format = format;
  q.tensor = std::move(quantize_matrix(format, w.data(), rows, cols)).value();
  return std::move(pack_quantized_weight(q)).value();
}

// The same codes regrouped by `group` columns (each new group takes the scale
// of the old group holding its first column).
inline PackedMatrix regroup(PackedMatrix w, int group) {
  const int64_t old_ng = w.n_groups(), old_g = w.group;
  w.group = group;
  const int64_t ng = w.n_groups();
  HugePageVector<uint16_t> s(static_cast<size_t>(w.rows * ng)), m(w.asymmetric ? s.size() : 0);
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t g = 0; g < ng; ++g) {
      s[r * ng + g] = w.scales[r * old_ng + g * group / old_g];
      if (w.asymmetric) m[r * ng + g] = w.mins[r * old_ng + g * group / old_g];
    }
  }
  w.scales = std::move(s);
  w.mins = std::move(m);
  return w;
}

}  // namespace lowbit::testing
