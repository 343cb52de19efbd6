// The fixed end of approx_gemm.h's summation order, shared by its AVX2 and AVX-512
// kernels (include only from TUs built for AVX2 or above): lanes j and j + 4 of the
// 8 (each already lane j + lane j + 8 of the 16), then j and j + 2, then 0 and 1.
#pragma once

#include <immintrin.h>

namespace lowbit {

inline float sum_lanes_in_order(__m256 s8) {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

}  // namespace lowbit
