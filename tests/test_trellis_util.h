// Random trellis-coded weights for the kernel tests: every bit string is a valid
// code (formats/trellis_code.h), so random bytes and random FP16 scales stand in
// for an encoder's output.
#pragma once

#include <cstdint>
#include <random>

#include "core/half.h"
#include "formats/trellis_code.h"
#include "quant/quantized_weight.h"

namespace lowbit::testing {

// [rows, cols] of `format` (tcq2_g64, ...): uniform random code bytes, scales
// ±0.05 / 51.6 times a factor in [0.5, 2] (random sign: kernels must not assume
// positive scales). cols must be a multiple of 64.
inline QuantizedWeight random_trellis_weight(const char* format, int64_t rows, int64_t cols, uint64_t seed) {
  const TrellisParams p = parse_trellis_format(format).value();
  std::mt19937_64 rng(seed);
  QuantizedWeight q;
  q.format = format;
  q.tensor.rows = rows;
  q.tensor.cols = cols;
  q.tensor.codes.resize(static_cast<size_t>(rows * trellis_row_bytes(p, cols)));
  for (uint8_t& b : q.tensor.codes) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> factor(0.5f, 2.0f);
  for (int64_t i = 0; i < rows * trellis_row_groups(p, cols); ++i) {
    const float s = (rng() & 1 ? -1.0f : 1.0f) * factor(rng) * 0.05f / 51.6f;
    const uint16_t h = float_to_fp16(s);
    q.tensor.scales.push_back(static_cast<uint8_t>(h & 0xFF));
    q.tensor.scales.push_back(static_cast<uint8_t>(h >> 8));
  }
  return q;
}

}  // namespace lowbit::testing
