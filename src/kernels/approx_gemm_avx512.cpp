// AVX-512 dot products of approx_gemm.h: L-Mul as integer additions on the bit
// patterns (16 lanes, unsigned compares into masks), FP8 E4M3 as exact FP32
// products; one accumulator holds the reference's 16 lanes.
#include <immintrin.h>

#include "kernels/approx_dot_reduce.h"
#include "kernels/approx_gemm.h"
#include "kernels/lmul.h"

namespace lowbit {
namespace {

struct LmulAvx512 {
  __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
  __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  __m512i min_normal = _mm512_set1_epi32(0x00800000);
  __m512i inf = _mm512_set1_epi32(0x7F800000);
  __m512i bias, low, high;  // sums below low flush to zero, from high on are infinite
  explicit LmulAvx512(int m) {
    const uint32_t b = 0x3F800000u - (1u << (kLmulMaxMantissa - lmul_offset_exponent(m)));
    bias = _mm512_set1_epi32(static_cast<int>(b));
    low = _mm512_set1_epi32(static_cast<int>(b + 0x00800000u));
    high = _mm512_set1_epi32(static_cast<int>(b + 0x7F800000u));
  }
  __m512 operator()(__m512i x, __m512i y) const {
    const __m512i s = _mm512_and_si512(_mm512_xor_si512(x, y), sign);
    const __m512i ax = _mm512_and_si512(x, magnitude), ay = _mm512_and_si512(y, magnitude);
    const __m512i sum = _mm512_add_epi32(ax, ay);
    const __mmask16 zero =
        _mm512_cmplt_epu32_mask(_mm512_min_epu32(ax, ay), min_normal) | _mm512_cmplt_epu32_mask(sum, low);
    const __mmask16 over = _mm512_cmpge_epu32_mask(sum, high);
    const __m512i r = _mm512_mask_mov_epi32(_mm512_sub_epi32(sum, bias), over, inf);
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_maskz_mov_epi32(static_cast<__mmask16>(~zero), r), s));
  }
};

struct Fp8Avx512 {
  explicit Fp8Avx512(int) {}
  __m512 operator()(__m512i x, __m512i y) const { return _mm512_mul_ps(_mm512_castsi512_ps(x), _mm512_castsi512_ps(y)); }
};

template <typename Product>
float dot_avx512(const uint32_t* a, const uint32_t* b, int64_t k, int m) {
  const Product product(m);
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) acc = _mm512_add_ps(acc, product(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i)));
  if (i < k) {  // lanes past k keep their sums
    const __mmask16 mask = static_cast<__mmask16>((1u << (k - i)) - 1u);
    const __m512 p = product(_mm512_maskz_loadu_epi32(mask, a + i), _mm512_maskz_loadu_epi32(mask, b + i));
    acc = _mm512_mask_add_ps(acc, mask, acc, p);
  }
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
  return sum_lanes_in_order(s8);
}

}  // namespace

ApproxDotFn lmul_dot_avx512() { return &dot_avx512<LmulAvx512>; }
ApproxDotFn fp8_dot_avx512() { return &dot_avx512<Fp8Avx512>; }

}  // namespace lowbit
