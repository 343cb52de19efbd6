// AVX2 pieces of the fixed-point activation preparations (lut4_fixed16.h,
// int8_fixed16.h), the twins of fixed16_avx512.h: the max |x| scan and the
// quantization of 16 columns into xi and its two bytes, equal to the portable
// fixed16_values and byte split (vcvtps2dq rounds to nearest even, as
// nearbyint does). Only *_avx2.cpp translation units include this.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/lut4_fixed16.h"

namespace lowbit {

// max |x| over x[0, n) (n a multiple of 8); false if any element is a NaN or infinity.
inline bool fixed16_absmax_avx2(const float* x, int64_t n, float* amax) {
  __m256 m = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  for (int64_t c = 0; c < n; c += 8) {
    const __m256 v = _mm256_loadu_ps(x + c);
    const __m256 d = _mm256_sub_ps(v, v);  // NaN for a NaN or an infinity, else 0
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(d, d, _CMP_UNORD_Q));
    m = _mm256_max_ps(m, _mm256_and_ps(v, abs_mask));
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  *amax = _mm_cvtss_f32(m4);
  return _mm256_movemask_ps(bad) == 0;
}

// 16 columns: xi = clamp(round(x * inv)) in two 8-lane halves, and the signed
// low and high bytes of each (xi = 256 hi + lo) in column order.
struct Fixed16Lanes8 {
  __m256i xi_a, xi_b;  // columns 0..7, 8..15
  __m128i lo, hi;
};

inline __m256i fixed16_xi8(const float* x, __m256 inv) {
  const __m256i xi = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), inv));
  return _mm256_max_epi32(_mm256_min_epi32(xi, _mm256_set1_epi32(kFixed16Max)), _mm256_set1_epi32(-kFixed16Max));
}

// The 16 signed bytes of 16 int32 values in [-128, 127] (a, then b), in column
// order: the saturating packs are exact on that range.
inline __m128i fixed16_pack_bytes(__m256i a, __m256i b) {
  const __m256i w16 = _mm256_packs_epi32(a, b);  // a0-3 b0-3 | a4-7 b4-7
  const __m128i b8 = _mm_packs_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
  return _mm_shuffle_epi8(b8, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15));
}

inline Fixed16Lanes8 fixed16_lanes_avx2(const float* x, __m256 inv) {
  const __m256i xa = fixed16_xi8(x, inv), xb = fixed16_xi8(x + 8, inv);
  const __m256i la = _mm256_srai_epi32(_mm256_slli_epi32(xa, 24), 24);
  const __m256i lb = _mm256_srai_epi32(_mm256_slli_epi32(xb, 24), 24);
  const __m256i ha = _mm256_srai_epi32(_mm256_sub_epi32(xa, la), 8);
  const __m256i hb = _mm256_srai_epi32(_mm256_sub_epi32(xb, lb), 8);
  return {xa, xb, fixed16_pack_bytes(la, lb), fixed16_pack_bytes(ha, hb)};
}

}  // namespace lowbit
