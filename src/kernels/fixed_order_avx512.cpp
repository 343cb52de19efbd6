// fixed_order_dot's order (kernels/fixed_order.h) in one ZMM per 16 lanes:
// a tile of 2 weight rows × 4 tokens keeps 8 lane-sum registers, each the lanes of
// one output element; a multiply then an add per block (no FMA), the +0-padded last
// block by a zero-masked load, and the same reduction tree.
#include <immintrin.h>

#include "kernels/fixed_order.h"

namespace lowbit {
namespace {

// s8[j] = l[j] + l[j+8], s4[j] = s8[j] + s8[j+4], s2[j] = s4[j] + s4[j+2], s2[0] + s2[1].
inline float reduce_tree(__m512 lanes) {
  const __m256 high = _mm512_castps512_ps256(_mm512_shuffle_f32x4(lanes, lanes, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(lanes), high);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

template <int R, int T>
inline void tile(const float* w, int64_t in, int64_t r, const float* x, int64_t t, float* y, int64_t y_stride) {
  __m512 acc[R][T];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 16 <= in; k += 16) {
    __m512 xv[T];
    for (int j = 0; j < T; ++j) xv[j] = _mm512_loadu_ps(x + (t + j) * in + k);
    for (int i = 0; i < R; ++i) {
      const __m512 wv = _mm512_loadu_ps(w + (r + i) * in + k);
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_add_ps(acc[i][j], _mm512_mul_ps(xv[j], wv));
    }
  }
  if (k < in) {
    const __mmask16 m = static_cast<__mmask16>((1u << (in - k)) - 1u);
    __m512 xv[T];
    for (int j = 0; j < T; ++j) xv[j] = _mm512_maskz_loadu_ps(m, x + (t + j) * in + k);
    for (int i = 0; i < R; ++i) {
      const __m512 wv = _mm512_maskz_loadu_ps(m, w + (r + i) * in + k);
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_add_ps(acc[i][j], _mm512_mul_ps(xv[j], wv));
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) y[(t + j) * y_stride + r + i] = reduce_tree(acc[i][j]);
  }
}

void rows_avx512(const float* w, int64_t in, int64_t r0, int64_t r1, const float* x, int64_t n_tokens, float* y,
                 int64_t y_stride) {
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) {
    int64_t t = 0;
    for (; t + 4 <= n_tokens; t += 4) tile<2, 4>(w, in, r, x, t, y, y_stride);
    for (; t < n_tokens; ++t) tile<2, 1>(w, in, r, x, t, y, y_stride);
  }
  for (; r < r1; ++r) {
    int64_t t = 0;
    for (; t + 4 <= n_tokens; t += 4) tile<1, 4>(w, in, r, x, t, y, y_stride);
    for (; t < n_tokens; ++t) tile<1, 1>(w, in, r, x, t, y, y_stride);
  }
}

}  // namespace

FixedOrderKernels fixed_order_kernels_avx512() { return {rows_avx512, "fixed-order/avx512"}; }

}  // namespace lowbit
