// The row loop shared by the AVX2 kernels of layouts with one scale per row
// (kInt8Row, kFp8Row, kFp16, kBf16; packed_matrix.h). Include only from
// *_avx2.cpp files. Decode is a functor: `__m256 operator()(const uint8_t* p)`
// returns the 8 values whose codes start at p (before the row scale), and
// `kBytes` is the bytes of 8 codes.
//
// Summation depth: four 8-lane accumulators per row take 32 consecutive columns
// per step (cols_padded is a multiple of 32), so each of the 32 logical lanes
// adds cols_padded / 32 products, then 5 levels of lane tree and the row factor:
// below the cols_padded / 16 + 8 depth that packed_gemv_bound allows.
#pragma once

#include <immintrin.h>

#include <algorithm>

#include "kernels/avx2_lanes.h"
#include "kernels/packed_matrix.h"

namespace lowbit::avx2 {

// Adds the products of 32 columns starting at code pointer p and x into acc[0..3].
template <class Decode>
inline void step32(const uint8_t* p, const __m256 (&x)[4], Decode decode, __m256 (&acc)[4]) {
  constexpr int64_t kB = Decode::kBytes;
  for (int k = 0; k < 4; ++k) acc[k] = _mm256_fmadd_ps(decode(p + kB * k), x[k], acc[k]);
}

inline float reduce4(const __m256 (&acc)[4]) {
  return hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

// y[r - r0] = row_factor(r) * sum_c decode(W[r, c]) x[c], two rows at a time so
// each x load serves both.
template <class Decode, class RowFactor>
void gemv_rows(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y, Decode decode,
               RowFactor row_factor) {
  constexpr int64_t kB = Decode::kBytes;
  const int64_t n32 = w.cols_padded / 32, rb = w.row_bytes();
  const float* x = a.x.data();
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) {
    const uint8_t* p0 = w.codes.data() + r * rb;
    const uint8_t* p1 = p0 + rb;
    __m256 acc0[4], acc1[4];
    for (int k = 0; k < 4; ++k) acc0[k] = acc1[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n32; ++i) {
      const __m256 xv[4] = {_mm256_loadu_ps(x + 32 * i), _mm256_loadu_ps(x + 32 * i + 8),
                            _mm256_loadu_ps(x + 32 * i + 16), _mm256_loadu_ps(x + 32 * i + 24)};
      step32(p0 + 4 * kB * i, xv, decode, acc0);
      step32(p1 + 4 * kB * i, xv, decode, acc1);
    }
    y[r - r0] = reduce4(acc0) * row_factor(r);
    y[r + 1 - r0] = reduce4(acc1) * row_factor(r + 1);
  }
  for (; r < r1; ++r) {
    const uint8_t* p0 = w.codes.data() + r * rb;
    __m256 acc0[4];
    for (int k = 0; k < 4; ++k) acc0[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n32; ++i) {
      const __m256 xv[4] = {_mm256_loadu_ps(x + 32 * i), _mm256_loadu_ps(x + 32 * i + 8),
                            _mm256_loadu_ps(x + 32 * i + 16), _mm256_loadu_ps(x + 32 * i + 24)};
      step32(p0 + 4 * kB * i, xv, decode, acc0);
    }
    y[r - r0] = reduce4(acc0) * row_factor(r);
  }
}

// out[r - r0][0:cols] = row_factor(r) * decode(W[r, :]).
template <class Decode, class RowFactor>
void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out, Decode decode, RowFactor row_factor) {
  constexpr int64_t kB = Decode::kBytes;
  const int64_t rb = w.row_bytes();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* p = w.codes.data() + r * rb;
    const __m256 f = _mm256_set1_ps(row_factor(r));
    float* o = out + (r - r0) * w.cols;
    for (int64_t c = 0; c < w.cols; c += 8) store_first(o + c, _mm256_mul_ps(decode(p + kB * (c / 8)), f), w.cols - c);
  }
}

}  // namespace lowbit::avx2
