// W8A8 with AVX2: the GEMM is kernels/w8a8_avx2_impl.h (gemm<false>); here the AVX2
// activation quantizer, which the AVX-VNNI row shares.
#include <cmath>

#include "kernels/w8a8_avx2_impl.h"

namespace lowbit {

// quantize_rows_int8_generic 8 columns at a time: the same IEEE division,
// rounding to nearest even (vroundps as nearbyint), clamp and +128; a token with
// a NaN or infinity gets a NaN scale and keeps q = 0, as there.
void quantize_rows_int8_avx2(const float* x, int64_t cols, int64_t t0, int64_t t1, Int8Activations& a) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256i bias = _mm256_set1_epi32(128);
  // Byte 0 of each int32 lane to bytes 0..3 of each 128-bit half, then the halves' first dwords together.
  const __m256i gather = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1,
                                          -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i halves = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
  const int64_t full = cols / 8 * 8;
  for (int64_t t = t0; t < t1; ++t) {
    const float* xt = x + t * cols;
    __m256 m = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    for (int64_t c = 0; c < full; c += 8) {
      const __m256 v = _mm256_loadu_ps(xt + c);
      const __m256 d = _mm256_sub_ps(v, v);  // NaN for a NaN or an infinity
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(d, d, _CMP_UNORD_Q));
      m = _mm256_max_ps(m, _mm256_and_ps(v, abs_mask));
    }
    float amax = 0.0f;
    bool finite = _mm256_movemask_ps(bad) == 0;
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, m);
    for (float v : lanes) amax = std::max(amax, v);
    for (int64_t c = full; c < cols; ++c) {
      finite = finite && std::isfinite(xt[c]);
      amax = std::max(amax, std::fabs(xt[c]));
    }
    if (!finite) {
      a.scale[t] = std::nanf("");
      continue;
    }
    const float s = int_act_scale({}, amax, 127.0f);
    if (!(s > 0.0f)) continue;
    a.scale[t] = s;
    const __m256 sv = _mm256_set1_ps(s);
    uint8_t* u = a.u8.data() + t * a.cols_padded;
    for (int64_t c = 0; c < full; c += 8) {
      __m256 q = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(xt + c), sv),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm256_min_ps(hi, _mm256_max_ps(lo, q));
      const __m256i v = _mm256_add_epi32(_mm256_cvttps_epi32(q), bias);
      const __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, gather), halves);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(u + c), _mm256_castsi256_si128(b));
    }
    for (int64_t c = full; c < cols; ++c) {
      const float q = std::clamp(std::nearbyint(xt[c] / s), -127.0f, 127.0f);
      u[c] = static_cast<uint8_t>(static_cast<int>(q) + 128);
    }
  }
}

W8A8Kernels w8a8_kernels_avx2() { return {gemm<false>, Isa::kAvx2}; }

}  // namespace lowbit
