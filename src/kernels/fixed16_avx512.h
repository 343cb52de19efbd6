// AVX-512 pieces of the fixed-point activation preparations (lut4_fixed16.h,
// int8_fixed16.h): the max |x| scan and the quantization of 16 columns into
// xi and its two bytes, equal to the portable fixed16_values and byte split
// (vcvtps2dq rounds to nearest even, as nearbyint does). Only AVX-512
// translation units include this.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/lut4_fixed16.h"

namespace lowbit {

// max |x| over x[0, n) (n a multiple of 16); false if any element is a NaN or infinity.
inline bool fixed16_absmax_avx512(const float* x, int64_t n, float* amax) {
  __m512 m = _mm512_setzero_ps();
  __mmask16 not_finite = 0;
  for (int64_t c = 0; c < n; c += 16) {
    const __m512 v = _mm512_loadu_ps(x + c);
    not_finite |= _mm512_fpclass_ps_mask(v, 0x99);  // QNaN, SNaN, +inf, -inf
    m = _mm512_max_ps(m, _mm512_abs_ps(v));
  }
  *amax = _mm512_reduce_max_ps(m);
  return not_finite == 0;
}

// 16 columns: xi = clamp(round(x * inv)), and its signed low byte and high byte
// (xi = 256 hi + lo).
struct Fixed16Lanes {
  __m512i xi;
  __m128i lo, hi;
};

inline Fixed16Lanes fixed16_lanes(const float* x, __m512 inv) {
  __m512i xi = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), inv));
  xi = _mm512_max_epi32(_mm512_min_epi32(xi, _mm512_set1_epi32(kFixed16Max)), _mm512_set1_epi32(-kFixed16Max));
  const __m512i lo = _mm512_srai_epi32(_mm512_slli_epi32(xi, 24), 24);
  const __m512i hi = _mm512_srai_epi32(_mm512_sub_epi32(xi, lo), 8);
  return {xi, _mm512_cvtepi32_epi8(lo), _mm512_cvtepi32_epi8(hi)};
}

}  // namespace lowbit
