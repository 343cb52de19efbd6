// AVX2 + FMA softmax / SwiGLU rows, 8 lanes (exp_rows.h has the method and its
// error). The exp is the AVX-512 one's: the same clamp, rounding, Cody–Waite
// reduction and polynomial, so the same p and n. AVX2 has no scalef, so 2ⁿ is
// applied as two exact power-of-two factors 2^⌊n/2⌋ · 2^(n − ⌊n/2⌋): for the
// clamped n in [−150, 128] each factor is a normal float (exponents −75..64), the
// first product p·2^⌊n/2⌋ is exact (p in [0.7, 1.5], a normal result), and the
// second rounds once, to a denormal, 0 or inf where the true value does, as
// scalef does. So exp8 returns exp16's value lane for lane.
#include <immintrin.h>

#include <cmath>

#include "kernels/avx2_lanes.h"
#include "kernels/exp_rows.h"

namespace lowbit {
namespace {

// 2^k for integer lanes k in [−126, 127]: the exponent field alone.
inline __m256 pow2(__m256i k) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

// e^x in 8 lanes.
inline __m256 exp8(__m256 x) {
  // Clamp (x second: vmaxps/vminps return the second operand on NaN, so NaN stays NaN).
  x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);  // e^-104 < half the smallest denormal: 0
  x = _mm256_min_ps(_mm256_set1_ps(89.0f), x);    // e^89 overflows: inf
  const __m256 n =
      _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 high part: 9 bits, n·hi exact
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);      // ln2 − high part
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  // NaN lanes: n converts to INT_MIN and the factors are garbage, but p is NaN, so the product is NaN.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i half = _mm256_srai_epi32(ni, 1);
  return _mm256_mul_ps(_mm256_mul_ps(p, pow2(half)), pow2(_mm256_sub_epi32(ni, half)));
}

// Lanes [0, left) set, left in [1, 8), as a maskload/maskstore mask. Only the
// tail of a row is masked: vmaskmovps stores are microcoded on AMD cores (about
// 3x slower rows when every chunk went through them).
inline __m256i tail_mask(int64_t left) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left)), lane);
}

inline float reduce_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

void softmax_avx2(float* x, int64_t n) {
  if (n <= 0) return;
  const int64_t full = n / 8 * 8;
  const __m256i tail = tail_mask(n - full);
  const __m256 minus_inf = _mm256_set1_ps(-INFINITY);
  __m256 mx = minus_inf;
  for (int64_t i = 0; i < full; i += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(x + i));
  if (full < n) {  // lanes past the end are −inf, not the maskload's 0, so they never win the max
    mx = _mm256_max_ps(mx, _mm256_blendv_ps(minus_inf, _mm256_maskload_ps(x + full, tail), _mm256_castsi256_ps(tail)));
  }
  const __m256 max_value = _mm256_set1_ps(reduce_max(mx));
  __m256 sum = _mm256_setzero_ps();
  for (int64_t i = 0; i < full; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), max_value));
    sum = _mm256_add_ps(sum, e);
    _mm256_storeu_ps(x + i, e);
  }
  if (full < n) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + full, tail), max_value));
    sum = _mm256_add_ps(sum, _mm256_and_ps(e, _mm256_castsi256_ps(tail)));  // lanes past the end add 0
    _mm256_maskstore_ps(x + full, tail, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / avx2::hsum(sum));
  for (int64_t i = 0; i < full; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  if (full < n) _mm256_maskstore_ps(x + full, tail, _mm256_mul_ps(_mm256_maskload_ps(x + full, tail), inv));
}

inline __m256 swiglu8(__m256 g, __m256 u) {
  const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
  return _mm256_mul_ps(silu, u);
}

void swiglu_avx2(float* gate, const float* up, int64_t n) {
  const int64_t full = n / 8 * 8;
  for (int64_t i = 0; i < full; i += 8) _mm256_storeu_ps(gate + i, swiglu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (full < n) {
    const __m256i k = tail_mask(n - full);
    _mm256_maskstore_ps(gate + full, k, swiglu8(_mm256_maskload_ps(gate + full, k), _mm256_maskload_ps(up + full, k)));
  }
}

void exp_avx2(const float* x, float* out, int64_t n) {
  const int64_t full = n / 8 * 8;
  for (int64_t i = 0; i < full; i += 8) _mm256_storeu_ps(out + i, exp8(_mm256_loadu_ps(x + i)));
  if (full < n) {
    const __m256i k = tail_mask(n - full);
    _mm256_maskstore_ps(out + full, k, exp8(_mm256_maskload_ps(x + full, k)));
  }
}

}  // namespace

ExpRowOps exp_row_ops_avx2() { return {softmax_avx2, swiglu_avx2, exp_avx2, "exp/avx2"}; }

}  // namespace lowbit
