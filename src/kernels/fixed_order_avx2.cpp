// fixed_order_dot's order (kernels/fixed_order.h) in two YMM per 16 lanes (lanes
// 0-7 and 8-15): a tile of 2 weight rows × 2 tokens keeps 8 registers of lane sums;
// a multiply then an add per block (no FMA), the +0-padded last block by masked
// loads, and the same reduction tree.
#include <immintrin.h>

#include "kernels/fixed_order.h"

namespace lowbit {
namespace {

// Lanes lo = l[0:8], hi = l[8:16]: s8 = lo + hi, then the tree of fixed_order_dot.
inline float reduce_tree(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

// Mask of the first `count` of 8 lanes (count in [0, 8]).
inline __m256i first_lanes(int64_t count) {
  const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), index);
}

template <int R, int T>
inline void tile(const float* w, int64_t in, int64_t r, const float* x, int64_t t, float* y, int64_t y_stride) {
  __m256 lo[R][T], hi[R][T];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) lo[i][j] = hi[i][j] = _mm256_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 16 <= in; k += 16) {
    __m256 xl[T], xh[T];
    for (int j = 0; j < T; ++j) {
      xl[j] = _mm256_loadu_ps(x + (t + j) * in + k);
      xh[j] = _mm256_loadu_ps(x + (t + j) * in + k + 8);
    }
    for (int i = 0; i < R; ++i) {
      const __m256 wl = _mm256_loadu_ps(w + (r + i) * in + k), wh = _mm256_loadu_ps(w + (r + i) * in + k + 8);
      for (int j = 0; j < T; ++j) {
        lo[i][j] = _mm256_add_ps(lo[i][j], _mm256_mul_ps(xl[j], wl));
        hi[i][j] = _mm256_add_ps(hi[i][j], _mm256_mul_ps(xh[j], wh));
      }
    }
  }
  if (k < in) {
    const __m256i ml = first_lanes(in - k), mh = first_lanes(in - k > 8 ? in - k - 8 : 0);
    __m256 xl[T], xh[T];
    for (int j = 0; j < T; ++j) {
      xl[j] = _mm256_maskload_ps(x + (t + j) * in + k, ml);
      xh[j] = _mm256_maskload_ps(x + (t + j) * in + k + 8, mh);
    }
    for (int i = 0; i < R; ++i) {
      const __m256 wl = _mm256_maskload_ps(w + (r + i) * in + k, ml);
      const __m256 wh = _mm256_maskload_ps(w + (r + i) * in + k + 8, mh);
      for (int j = 0; j < T; ++j) {
        lo[i][j] = _mm256_add_ps(lo[i][j], _mm256_mul_ps(xl[j], wl));
        hi[i][j] = _mm256_add_ps(hi[i][j], _mm256_mul_ps(xh[j], wh));
      }
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) y[(t + j) * y_stride + r + i] = reduce_tree(lo[i][j], hi[i][j]);
  }
}

void rows_avx2(const float* w, int64_t in, int64_t r0, int64_t r1, const float* x, int64_t n_tokens, float* y,
               int64_t y_stride) {
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) {
    int64_t t = 0;
    for (; t + 2 <= n_tokens; t += 2) tile<2, 2>(w, in, r, x, t, y, y_stride);
    for (; t < n_tokens; ++t) tile<2, 1>(w, in, r, x, t, y, y_stride);
  }
  for (; r < r1; ++r) {
    for (int64_t t = 0; t < n_tokens; ++t) tile<1, 1>(w, in, r, x, t, y, y_stride);
  }
}

}  // namespace

FixedOrderKernels fixed_order_kernels_avx2() { return {rows_avx2, "fixed-order/avx2"}; }

}  // namespace lowbit
