// AVX512_BF16 paths of gemm_bf16.h: the 8 × 32 micro-kernel (VDPBF16PS, 16
// accumulators), the rounding of rows and the pair interleave of X's columns.
#include <immintrin.h>

#include "kernels/gemm_bf16.h"

namespace lowbit {
namespace {

// c[r, 0..32) (+)= alpha · Σ_p a(r, p) · panel(p, ·), R rows. Per pair: one 32-bit
// broadcast of a(r, p) against the panel's two registers (columns 0-15, 16-31).
template <int R>
void micro(const uint32_t* a, int64_t a_row_stride, int64_t a_pair_stride, const uint32_t* panel, int64_t pairs,
           float* c, int64_t ldc, int cols, float alpha, bool accumulate) {
  // Every loop over r is unrolled so that acc lives in 2R registers (-O2 keeps
  // a rolled loop's array in memory: a load and a store around every VDPBF16PS).
  __m512 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(panel + p * kBf16PanelCols);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(panel + p * kBf16PanelCols + 16);
    const uint32_t* ap = a + p * a_pair_stride;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[r * a_row_stride]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, w0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, w1);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha);
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xffff) : cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 16)) - 1);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* out = c + r * ldc;
    __m512 y0 = _mm512_mul_ps(va, acc[r][0]), y1 = _mm512_mul_ps(va, acc[r][1]);
    if (accumulate) {
      y0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, out), y0);
      y1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, out + 16), y1);
    }
    _mm512_mask_storeu_ps(out, m0, y0);
    _mm512_mask_storeu_ps(out + 16, m1, y1);
  }
}

void micro_kernel(const uint32_t* a, int64_t a_row_stride, int64_t a_pair_stride, const uint32_t* panel,
                  int64_t pairs, float* c, int64_t ldc, int rows, int cols, float alpha, bool accumulate) {
  switch (rows) {
    case 8: return micro<8>(a, a_row_stride, a_pair_stride, panel, pairs, c, ldc, cols, alpha, accumulate);
    case 7: return micro<7>(a, a_row_stride, a_pair_stride, panel, pairs, c, ldc, cols, alpha, accumulate);
    case 6: return micro<6>(a, a_row_stride, a_pair_stride, panel, pairs, c, ldc, cols, alpha, accumulate);
    case 5: return micro<5>(a, a_row_stride, a_pair_stride, panel, pairs, c, ldc, cols, alpha, accumulate);
    case 4: return micro<4>(a, a_row_stride, a_pair_stride, panel, pairs, c, ldc, cols, alpha, accumulate);
    case 3: return micro<3>(a, a_row_stride, a_pair_stride, panel, pairs, c, ldc, cols, alpha, accumulate);
    case 2: return micro<2>(a, a_row_stride, a_pair_stride, panel, pairs, c, ldc, cols, alpha, accumulate);
    case 1: return micro<1>(a, a_row_stride, a_pair_stride, panel, pairs, c, ldc, cols, alpha, accumulate);
    default: return;
  }
}

// n floats (even) into n/2 pairs: VCVTNE2PS2BF16 puts its second operand's 16
// values in the low half, so (x[16..31], x[0..15]) gives x[0..31] in order.
void round_pairs(const float* x, int64_t n, uint32_t* out) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(out + i / 2, (__m512i)h);
  }
  if (i < n) {
    const int64_t left = n - i;  // even, < 32
    const __mmask16 lo = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    const __mmask16 hi = left > 16 ? __mmask16((1u << (left - 16)) - 1) : __mmask16(0);
    const __m512bh h =
        _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + i + 16), _mm512_maskz_loadu_ps(lo, x + i));
    _mm512_mask_storeu_epi32(out + i / 2, __mmask16((1u << (left / 2)) - 1), (__m512i)h);
  }
}

// Pair p of columns [0, n) of two rows (lo: row 2p, hi: row 2p + 1 or null for a
// zero row) into the panels, 16 columns at a time (n a multiple of 16).
void interleave_pairs(const float* lo, const float* hi, int64_t n, int64_t pairs, int64_t p, uint32_t* panels) {
  for (int64_t i = 0; i < n; i += 16) {
    const __m256i l = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(lo + i));
    const __m256i h = hi != nullptr ? (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(hi + i)) : _mm256_setzero_si256();
    const __m512i v = _mm512_or_si512(_mm512_cvtepu16_epi32(l), _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    uint32_t* dst = panels + (i / kBf16PanelCols) * pairs * kBf16PanelCols + p * kBf16PanelCols + i % kBf16PanelCols;
    _mm512_storeu_si512(dst, v);
  }
}

}  // namespace

Bf16MicroKernel bf16_micro_kernel_avx512bf16() { return micro_kernel; }
Bf16RoundFn bf16_round_avx512bf16() { return round_pairs; }
Bf16InterleaveFn bf16_interleave_avx512bf16() { return interleave_pairs; }

}  // namespace lowbit
