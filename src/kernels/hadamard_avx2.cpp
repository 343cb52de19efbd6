// AVX2 row kernel of the Hadamard transforms: hadamard_row_kernels.h gives the
// arithmetic, which is the generic kernel's, element for element. Base orders
// are multiples of 4: a block's tail is one 4-lane SSE vector.
#include <immintrin.h>

#include "kernels/hadamard_row_kernels.h"

namespace lowbit {
namespace {

// u, v: spans of `len` floats; (u, v) ← (u + v, u − v).
void butterfly_span(float* u, float* v, int64_t len) {
  int64_t c = 0;
  for (; c + 8 <= len; c += 8) {
    const __m256 a = _mm256_loadu_ps(u + c);
    const __m256 d = _mm256_loadu_ps(v + c);
    _mm256_storeu_ps(u + c, _mm256_add_ps(a, d));
    _mm256_storeu_ps(v + c, _mm256_sub_ps(a, d));
  }
  for (; c < len; ++c) {  // spans shorter than 8 (m = 1, h < 8) and odd tails
    const float a = u[c];
    const float d = v[c];
    u[c] = a + d;
    v[c] = a - d;
  }
}

// Every block of m = 8·NV + 4·TAIL4 (TAIL4 ∈ {0, 1}): x_block ← (x_block · b) · scale.
template <int NV, int TAIL4>
void base_products(float* x, int64_t pow2, int m, const float* b, float scale) {
  const __m256 s = _mm256_set1_ps(scale);
  for (int64_t blk = 0; blk < pow2; ++blk) {
    float* xb = x + blk * m;
    __m256 y[NV];
    __m128 t = _mm_setzero_ps();
    for (int v = 0; v < NV; ++v) y[v] = _mm256_setzero_ps();
    for (int k = 0; k < m; ++k) {
      const __m256 xk = _mm256_set1_ps(xb[k]);
      const float* row = b + static_cast<int64_t>(k) * m;
      for (int v = 0; v < NV; ++v) y[v] = _mm256_add_ps(y[v], _mm256_mul_ps(xk, _mm256_loadu_ps(row + 8 * v)));
      if constexpr (TAIL4 != 0) t = _mm_add_ps(t, _mm_mul_ps(_mm256_castps256_ps128(xk), _mm_loadu_ps(row + 8 * NV)));
    }
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(xb + 8 * v, _mm256_mul_ps(y[v], s));
    if constexpr (TAIL4 != 0) _mm_storeu_ps(xb + 8 * NV, _mm_mul_ps(t, _mm256_castps256_ps128(s)));
  }
}

}  // namespace

void hadamard_row_avx2(float* x, int64_t pow2, int m, const float* b, float scale) {
  for (int64_t h = 1; h < pow2; h *= 2) {
    const int64_t span = h * m;
    for (int64_t i = 0; i < pow2; i += 2 * h) butterfly_span(x + i * m, x + i * m + span, span);
  }
  switch (m) {
    case 1: {
      const __m256 s = _mm256_set1_ps(scale);
      int64_t i = 0;
      for (; i + 8 <= pow2; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), s));
      for (; i < pow2; ++i) x[i] *= scale;
      return;
    }
    case 12: base_products<1, 1>(x, pow2, m, b, scale); return;
    case 20: base_products<2, 1>(x, pow2, m, b, scale); return;
    case 28: base_products<3, 1>(x, pow2, m, b, scale); return;
    case 36: base_products<4, 1>(x, pow2, m, b, scale); return;
    case 44: base_products<5, 1>(x, pow2, m, b, scale); return;
    case 52: base_products<6, 1>(x, pow2, m, b, scale); return;
    case 60: base_products<7, 1>(x, pow2, m, b, scale); return;
    default:  // not a base order (hadamard_order never gives one): block by block
      for (int64_t blk = 0; blk < pow2; ++blk) hadamard_row_generic(x + blk * m, 1, m, b, scale);
      return;
  }
}

}  // namespace lowbit
