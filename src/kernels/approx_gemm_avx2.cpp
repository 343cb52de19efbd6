// AVX2 dot products of approx_gemm.h: L-Mul as integer additions on the bit
// patterns (8 lanes), FP8 E4M3 as exact FP32 products; two accumulators hold the
// reference's lanes 0-7 and 8-15.
#include <immintrin.h>

#include <algorithm>

#include "kernels/approx_dot_reduce.h"
#include "kernels/approx_gemm.h"
#include "kernels/lmul.h"

namespace lowbit {
namespace {

// lmul_bits on 8 lanes of finite operands. AVX2 compares signed only, so the
// unsigned magnitude sum is compared with its top bit flipped.
struct LmulAvx2 {
  __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
  __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  __m256i min_normal = _mm256_set1_epi32(0x00800000);
  __m256i inf = _mm256_set1_epi32(0x7F800000);
  __m256i bias;
  __m256i low_flipped;      // (bias + min normal) ^ 2^31: sums below flush to zero
  __m256i high_flipped_m1;  // ((bias + inf) ^ 2^31) − 1: sums above are infinite
  explicit LmulAvx2(int m) {
    const uint32_t b = 0x3F800000u - (1u << (kLmulMaxMantissa - lmul_offset_exponent(m)));
    bias = _mm256_set1_epi32(static_cast<int>(b));
    low_flipped = _mm256_set1_epi32(static_cast<int>((b + 0x00800000u) ^ 0x80000000u));
    high_flipped_m1 = _mm256_set1_epi32(static_cast<int>(((b + 0x7F800000u) ^ 0x80000000u) - 1u));
  }
  __m256 operator()(__m256i x, __m256i y) const {
    const __m256i s = _mm256_and_si256(_mm256_xor_si256(x, y), sign);
    const __m256i ax = _mm256_and_si256(x, magnitude), ay = _mm256_and_si256(y, magnitude);
    const __m256i sum = _mm256_add_epi32(ax, ay);
    const __m256i flipped = _mm256_xor_si256(sum, sign);
    const __m256i zero = _mm256_or_si256(_mm256_cmpgt_epi32(min_normal, _mm256_min_epu32(ax, ay)),
                                         _mm256_cmpgt_epi32(low_flipped, flipped));
    const __m256i over = _mm256_cmpgt_epi32(flipped, high_flipped_m1);
    __m256i r = _mm256_blendv_epi8(_mm256_sub_epi32(sum, bias), inf, over);
    r = _mm256_andnot_si256(zero, r);
    return _mm256_castsi256_ps(_mm256_or_si256(r, s));
  }
};

struct Fp8Avx2 {
  explicit Fp8Avx2(int) {}
  __m256 operator()(__m256i x, __m256i y) const { return _mm256_mul_ps(_mm256_castsi256_ps(x), _mm256_castsi256_ps(y)); }
};

__m256i lane_mask(int64_t n) {  // lanes [0, n) set, n in [0, 8]
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

template <typename Product>
float dot_avx2(const uint32_t* a, const uint32_t* b, int64_t k, int m) {
  const Product product(m);
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();  // lanes 0-7, 8-15
  auto load = [](const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    lo = _mm256_add_ps(lo, product(load(a + i), load(b + i)));
    hi = _mm256_add_ps(hi, product(load(a + i + 8), load(b + i + 8)));
  }
  // The tail: lanes past k keep their sums (a +0 added to −0 would not).
  auto tail = [&](__m256 acc, int64_t at, int64_t n) {
    const __m256i mask = lane_mask(n);
    const auto* pa = reinterpret_cast<const int*>(a + at);
    const auto* pb = reinterpret_cast<const int*>(b + at);
    const __m256 p = product(_mm256_maskload_epi32(pa, mask), _mm256_maskload_epi32(pb, mask));
    return _mm256_blendv_ps(acc, _mm256_add_ps(acc, p), _mm256_castsi256_ps(mask));
  };
  if (i < k) lo = tail(lo, i, std::min<int64_t>(8, k - i));
  if (i + 8 < k) hi = tail(hi, i + 8, k - i - 8);
  const __m256 s8 = _mm256_add_ps(lo, hi);
  return sum_lanes_in_order(s8);
}

}  // namespace

ApproxDotFn lmul_dot_avx2() { return &dot_avx2<LmulAvx2>; }
ApproxDotFn fp8_dot_avx2() { return &dot_avx2<Fp8Avx2>; }

}  // namespace lowbit
