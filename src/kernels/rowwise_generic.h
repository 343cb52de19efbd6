// The row loop shared by the portable kernels of layouts with one scale per row
// (kInt8Row, kFp8Row, kFp16, kBf16; packed_matrix.h): 16 lanes, as the SIMD
// kernels, so the compiler can vectorize it. Decode: `float operator()(const
// uint8_t* row, int64_t c)` is the value of column c before the row scale.
#pragma once

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

}  // namespace lowbit::generic
