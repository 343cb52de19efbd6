// The row loops shared by the portable kernels (packed_matrix.h): 16 lanes, as
// the SIMD kernels, so the compiler can vectorize them. gemv_rows /
// dequantize_rows serve the layouts with one scale per row (kInt8Row, kFp8Row,
// kFp16, kBf16; Decode: `float operator()(const uint8_t* row, int64_t c)` is the
// value of column c before the row scale); gemv_grouped_table serves the
// grouped-table layouts (kLut4, kBits).
#pragma once

#include <algorithm>

#include "core/half.h"
#include "kernels/packed_matrix.h"

namespace lowbit::generic {

template <class Decode, class RowFactor>
void gemv_rows(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y, Decode decode,
               RowFactor row_factor) {
  const float* x = a.x.data();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* p = w.codes.data() + r * w.row_bytes();
    float acc[16] = {};
    for (int64_t c = 0; c < w.cols_padded; c += 16) {
      for (int j = 0; j < 16; ++j) acc[j] += decode(p, c + j) * x[c + j];
    }
    float sum = 0.0f;
    for (float v : acc) sum += v;
    y[r - r0] = sum * row_factor(r);
  }
}

template <class Decode, class RowFactor>
void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out, Decode decode, RowFactor row_factor) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* p = w.codes.data() + r * w.row_bytes();
    const float f = row_factor(r);
    for (int64_t c = 0; c < w.cols; ++c) out[(r - r0) * w.cols + c] = decode(p, c) * f;
  }
}

// The row loop of the portable grouped-table kernels (kLut4, kBits): per 32-column
// block, `block_codes(row, b, lo, hi)` writes the table indices of columns
// 32b..32b+15 to lo[16] and 32b+16..32b+31 to hi[16]; lut[code] * x accumulates in
// 16 lanes per group, times the group scale (a group of 16 splits a block: the
// high half takes the next group's scale), plus min * sum(x) per asymmetric group.
template <class BlockCodes>
void gemv_grouped_table(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y,
                        BlockCodes block_codes) {
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups();
  const int64_t blocks_per_group = std::max<int64_t>(1, w.group / 32);
  const float* x = a.x.data();
  uint32_t q_lo[16], q_hi[16];
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * w.row_bytes();
    const uint16_t* sc = w.scales.data() + r * ng;
    float acc[16] = {};
    for (int64_t b0 = 0; b0 < nb; b0 += blocks_per_group) {
      const int64_t b1 = std::min(nb, b0 + blocks_per_group);
      float lo[16] = {}, hi[16] = {};
      for (int64_t b = b0; b < b1; ++b) {
        block_codes(codes, b, q_lo, q_hi);
        const float* xb = x + 32 * b;
        for (int j = 0; j < 16; ++j) {
          lo[j] += w.lut[q_lo[j]] * xb[j];
          hi[j] += w.lut[q_hi[j]] * xb[16 + j];
        }
      }
      const int64_t g_lo = 32 * b0 / w.group, g_hi = (32 * b0 + 16) / w.group;
      const float s_lo = half_code_to_float(sc[g_lo], w.bf16_scales);
      const float s_hi = half_code_to_float(sc[g_hi], w.bf16_scales);
      for (int j = 0; j < 16; ++j) acc[j] += lo[j] * s_lo + hi[j] * s_hi;
    }
    float sum = 0.0f;
    for (float v : acc) sum += v;
    if (w.asymmetric) {
      const uint16_t* mn = w.mins.data() + r * ng;
      for (int64_t g = 0; g < ng; ++g) sum += half_code_to_float(mn[g], w.bf16_scales) * a.xsum[g];
    }
    y[r - r0] = sum * w.tensor_scale;
  }
}

}  // namespace lowbit::generic
