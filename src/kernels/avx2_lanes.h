// Horizontal sums and partial stores shared by the AVX2 kernels. Include only
// from *_avx2.cpp files (compiled with -mavx2 -mfma -mf16c).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace lowbit::avx2 {

// Sum of the 8 float lanes: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), a 3-level tree.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Sum of the 4 int32 lanes (exact as long as the true sum fits int32).
inline int32_t hsum(__m128i v) {
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4E));
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xB1));
  return _mm_cvtsi128_si32(v);
}

// Sum of the 8 int32 lanes.
inline int32_t hsum(__m256i v) { return hsum(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1))); }

// Stores the first n lanes of v at o (all 8 when n >= 8; n > 0).
inline void store_first(float* o, __m256 v, int64_t n) {
  if (n >= 8) {
    _mm256_storeu_ps(o, v);
    return;
  }
  const __m256i mask =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  _mm256_maskstore_ps(o, mask, v);
}

}  // namespace lowbit::avx2
