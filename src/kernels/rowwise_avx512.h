// The row loop shared by the AVX-512 kernels of layouts with one scale per row
// (kInt8Row, kFp8Row, kFp16, kBf16; packed_matrix.h). Include only from
// *_avx512.cpp files. Decode is a functor: `__m512 operator()(const uint8_t* p)`
// returns the 16 values whose codes start at p (before the row scale), and
// `kBytes` is the bytes of 16 codes.
#pragma once

// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>

#include "kernels/packed_matrix.h"
#include "kernels/stream_prefetch.h"

namespace lowbit::avx512 {

// y[r - r0] = row_factor(r) * sum_c decode(W[r, c]) x[c], two rows at a time
// with two accumulators each.
template <class Decode, class RowFactor>
void gemv_rows(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y, Decode decode,
               RowFactor row_factor) {
  constexpr int64_t kB = Decode::kBytes;
  const int64_t n16 = w.cols_padded / 16, rb = w.row_bytes();
  const float* x = a.x.data();
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) {
    const uint8_t* p0 = w.codes.data() + r * rb;
    const uint8_t* p1 = p0 + rb;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= n16; i += 2) {
      prefetch_stream(p0 + kB * i);  // the hardware prefetcher alone leaves the loop waiting on DRAM
      prefetch_stream(p1 + kB * i);
      const __m512 x0 = _mm512_loadu_ps(x + 16 * i), x1 = _mm512_loadu_ps(x + 16 * i + 16);
      a0 = _mm512_fmadd_ps(decode(p0 + kB * i), x0, a0);
      a1 = _mm512_fmadd_ps(decode(p0 + kB * i + kB), x1, a1);
      b0 = _mm512_fmadd_ps(decode(p1 + kB * i), x0, b0);
      b1 = _mm512_fmadd_ps(decode(p1 + kB * i + kB), x1, b1);
    }
    for (; i < n16; ++i) {
      const __m512 x0 = _mm512_loadu_ps(x + 16 * i);
      a0 = _mm512_fmadd_ps(decode(p0 + kB * i), x0, a0);
      b0 = _mm512_fmadd_ps(decode(p1 + kB * i), x0, b0);
    }
    y[r - r0] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) * row_factor(r);
    y[r + 1 - r0] = _mm512_reduce_add_ps(_mm512_add_ps(b0, b1)) * row_factor(r + 1);
  }
  for (; r < r1; ++r) {
    const uint8_t* p0 = w.codes.data() + r * rb;
    __m512 a0 = _mm512_setzero_ps();
    for (int64_t i = 0; i < n16; ++i) a0 = _mm512_fmadd_ps(decode(p0 + kB * i), _mm512_loadu_ps(x + 16 * i), a0);
    y[r - r0] = _mm512_reduce_add_ps(a0) * row_factor(r);
  }
}

// out[r - r0][0:cols] = row_factor(r) * decode(W[r, :]).
template <class Decode, class RowFactor>
void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out, Decode decode, RowFactor row_factor) {
  constexpr int64_t kB = Decode::kBytes;
  const int64_t rb = w.row_bytes();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* p = w.codes.data() + r * rb;
    const __m512 f = _mm512_set1_ps(row_factor(r));
    float* o = out + (r - r0) * w.cols;
    for (int64_t c = 0; c < w.cols; c += 16) {
      const int64_t n = std::min<int64_t>(16, w.cols - c);
      _mm512_mask_storeu_ps(o + c, static_cast<__mmask16>((1u << n) - 1), _mm512_mul_ps(decode(p + kB * (c / 16)), f));
    }
  }
}

}  // namespace lowbit::avx512
