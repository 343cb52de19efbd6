// AVX-512 row kernel of the Hadamard transforms: hadamard_row_kernels.h gives
// the arithmetic, which is the generic kernel's, element for element.
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include "kernels/hadamard_row_kernels.h"

namespace lowbit {
namespace {

// Mask of the first `n` lanes of 16 (n ≤ 16).
inline __mmask16 first_lanes(int64_t n) { return static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1u); }

// u, v: spans of `len` floats; (u, v) ← (u + v, u − v). Tails go down in 8-,
// 4- and 1-lane steps rather than through masked stores: the next stage loads
// what this one stored, and a masked store does not forward to that load.
void butterfly_span(float* u, float* v, int64_t len) {
  int64_t c = 0;
  for (; c + 16 <= len; c += 16) {
    const __m512 a = _mm512_loadu_ps(u + c);
    const __m512 d = _mm512_loadu_ps(v + c);
    _mm512_storeu_ps(u + c, _mm512_add_ps(a, d));
    _mm512_storeu_ps(v + c, _mm512_sub_ps(a, d));
  }
  if (c + 8 <= len) {
    const __m256 a = _mm256_loadu_ps(u + c);
    const __m256 d = _mm256_loadu_ps(v + c);
    _mm256_storeu_ps(u + c, _mm256_add_ps(a, d));
    _mm256_storeu_ps(v + c, _mm256_sub_ps(a, d));
    c += 8;
  }
  if (c + 4 <= len) {
    const __m128 a = _mm_loadu_ps(u + c);
    const __m128 d = _mm_loadu_ps(v + c);
    _mm_storeu_ps(u + c, _mm_add_ps(a, d));
    _mm_storeu_ps(v + c, _mm_sub_ps(a, d));
    c += 4;
  }
  for (; c < len; ++c) {
    const float a = u[c];
    const float d = v[c];
    u[c] = a + d;
    v[c] = a - d;
  }
}

// Stores the first `lanes` ∈ {4, 8, 12, 16} lanes of v (base orders are
// multiples of 4), without a masked store for the same reason.
inline void store_lanes(float* p, __m512 v, int lanes) {
  if (lanes == 16) return _mm512_storeu_ps(p, v);
  const __m256 lo = _mm512_castps512_ps256(v);
  if (lanes == 4) return _mm_storeu_ps(p, _mm256_castps256_ps128(lo));
  _mm256_storeu_ps(p, lo);
  if (lanes == 12) _mm_storeu_ps(p + 8, _mm512_extractf32x4_ps(v, 2));
}

// Every block of m (NV vectors of 16, the last one `tail` lanes wide):
// x_block ← (x_block · b) · scale, k ascending.
template <int NV>
void base_products(float* x, int64_t pow2, int m, const float* b, float scale) {
  const __mmask16 tail = first_lanes(m - 16 * (NV - 1));
  const __m512 s = _mm512_set1_ps(scale);
  for (int64_t blk = 0; blk < pow2; ++blk) {
    float* xb = x + blk * m;
    __m512 y[NV];
    for (int v = 0; v < NV; ++v) y[v] = _mm512_setzero_ps();
    for (int k = 0; k < m; ++k) {
      const __m512 xk = _mm512_set1_ps(xb[k]);
      const float* row = b + static_cast<int64_t>(k) * m;
      for (int v = 0; v < NV - 1; ++v) y[v] = _mm512_add_ps(y[v], _mm512_mul_ps(xk, _mm512_loadu_ps(row + 16 * v)));
      y[NV - 1] = _mm512_add_ps(y[NV - 1], _mm512_mul_ps(xk, _mm512_maskz_loadu_ps(tail, row + 16 * (NV - 1))));
    }
    for (int v = 0; v < NV - 1; ++v) _mm512_storeu_ps(xb + 16 * v, _mm512_mul_ps(y[v], s));
    store_lanes(xb + 16 * (NV - 1), _mm512_mul_ps(y[NV - 1], s), m - 16 * (NV - 1));
  }
}

}  // namespace

void hadamard_row_avx512(float* x, int64_t pow2, int m, const float* b, float scale) {
  for (int64_t h = 1; h < pow2; h *= 2) {
    const int64_t span = h * m;
    for (int64_t i = 0; i < pow2; i += 2 * h) butterfly_span(x + i * m, x + i * m + span, span);
  }
  if (m == 1) {
    const __m512 s = _mm512_set1_ps(scale);
    int64_t i = 0;
    for (; i + 16 <= pow2; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), s));
    if (i < pow2) {
      const __mmask16 k = first_lanes(pow2 - i);
      _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), s));
    }
    return;
  }
  switch ((m + 15) / 16) {
    case 1: base_products<1>(x, pow2, m, b, scale); break;
    case 2: base_products<2>(x, pow2, m, b, scale); break;
    case 3: base_products<3>(x, pow2, m, b, scale); break;
    default: base_products<4>(x, pow2, m, b, scale); break;  // m ≤ 60 < 64
  }
}

}  // namespace lowbit
