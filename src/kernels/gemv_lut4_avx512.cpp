// kLut4 kernels with AVX-512 (packed_matrix.h). One 16-byte load holds the codes
// of a 32-column block: zero-extended to 16 x 32-bit lanes, the low nibbles are
// columns 0..15 and the high nibbles columns 16..31; vpermps looks both up in the
// 16-entry table held in one register (it reads only bits 3..0 of each index,
// so the low nibble needs no mask), and FMAs accumulate lut * x per group.
//
// Per 32 weights the loop issues 6 vector uops (zero-extend, shift, two
// permutes, two FMAs), so decode is bound by the shuffle port, not by memory;
// everything else is kept out of the inner loop: a row's group scales are
// converted to FP32 once (so the per-group multiply takes its scale as an
// embedded broadcast from memory, not a shuffle), the two half-block sums of a
// group are added before the one scale FMA, two rows run together so their FMA
// chains overlap, and the codes are prefetched kPrefetchBytes ahead because
// the hardware prefetcher alone leaves the shuffle-bound loop waiting on DRAM
// (4096 bytes, four rows of a 2048-column layer ahead. One core at 32768 x 2048:
// 512 bytes 20.5, 2048 bytes 23.2 Gw/s; TinyLlama W4 decode on 2 threads,
// alternating runs: 2048 bytes 25.2-25.4, 4096 bytes 27.7-28.0, 8192 bytes
// 27.1-27.4 tokens/s).
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/packed_matrix.h"
#include "kernels/scale_rows_avx512.h"

namespace lowbit {
namespace {

constexpr int kPrefetchBytes = 4096;

// 16 x 32-bit code lanes of block b: the low nibbles are columns 32b..32b+15.
inline __m512i block_codes(const uint8_t* codes, int64_t b) {
  _mm_prefetch(reinterpret_cast<const char*>(codes + 16 * b + kPrefetchBytes), _MM_HINT_T0);
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 16 * b)));
}

// Two rows (codes c0, c1; FP32 scales s0, s1): acc0/acc1 += sum over groups of
// scale * sum_{c in group} lut[code_c] x_c. Named accumulators, not arrays: GCC
// keeps an array of __m512 on the stack, and the store/reload in every FMA chain
// halved the speed.
//   kWholeBlocks: group is a multiple of 32, so both halves of a block share a scale.
//   otherwise:    each 16-column half takes the scale of its own group.
template <bool kWholeBlocks>
inline void two_rows_dot(const uint8_t* c0, const uint8_t* c1, const float* s0, const float* s1, const float* x,
                         __m512 lut, int64_t nb, int group, __m512& acc0, __m512& acc1) {
  if constexpr (kWholeBlocks) {
    const int64_t bpg = group / 32;
    for (int64_t b0 = 0, g = 0; b0 < nb; b0 += bpg, ++g) {
      __m512 lo0 = _mm512_setzero_ps(), hi0 = _mm512_setzero_ps(), lo1 = _mm512_setzero_ps(), hi1 = _mm512_setzero_ps();
      const int64_t b1 = std::min(nb, b0 + bpg);
      for (int64_t b = b0; b < b1; ++b) {
        const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        const __m512i q0 = block_codes(c0, b), q1 = block_codes(c1, b);
        lo0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(q0, lut), x0, lo0);
        hi0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(q0, 4), lut), x1, hi0);
        lo1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(q1, lut), x0, lo1);
        hi1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(q1, 4), lut), x1, hi1);
      }
      acc0 = _mm512_fmadd_ps(_mm512_add_ps(lo0, hi0), _mm512_set1_ps(s0[g]), acc0);
      acc1 = _mm512_fmadd_ps(_mm512_add_ps(lo1, hi1), _mm512_set1_ps(s1[g]), acc1);
    }
  } else {
    for (int64_t b = 0; b < nb; ++b) {
      const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
      const int64_t g_lo = 32 * b / group, g_hi = (32 * b + 16) / group;
      const __m512i q0 = block_codes(c0, b), q1 = block_codes(c1, b);
      acc0 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_permutexvar_ps(q0, lut), _mm512_set1_ps(s0[g_lo])), x0, acc0);
      acc0 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(q0, 4), lut), _mm512_set1_ps(s0[g_hi])),
                             x1, acc0);
      acc1 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_permutexvar_ps(q1, lut), _mm512_set1_ps(s1[g_lo])), x0, acc1);
      acc1 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(q1, 4), lut), _mm512_set1_ps(s1[g_hi])),
                             x1, acc1);
    }
  }
}

// sum_g m_g xsum_g for an asymmetric row (mins converted to FP32 in mf).
float mins_dot(const float* mf, const float* xsum, int64_t ng) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t g = 0; g < ng; g += 16) {
    const int64_t m = std::min<int64_t>(16, ng - g);
    const __mmask16 k = static_cast<__mmask16>((1u << m) - 1);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, mf + g), _mm512_maskz_loadu_ps(k, xsum + g), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

template <bool kBf16, bool kWholeBlocks>
void gemv_t(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups(), rb = w.row_bytes();
  const int64_t ngp = (ng + 15) / 16 * 16;
  const __m512 lut = _mm512_loadu_ps(w.lut);
  const float* x = a.x.data();
  RowPairScales<kBf16> pair_scales(ngp);
  float* sf[2] = {pair_scales.scales(0), pair_scales.scales(1)};
  float* mf[2] = {pair_scales.mins(0), pair_scales.mins(1)};
  for (int64_t r = r0; r < r1; r += 2) {
    const bool pair = r + 1 < r1;  // a lone last row runs as both rows, its copy discarded
    const int64_t rr[2] = {r, pair ? r + 1 : r};
    pair_scales.load(w, rr, 1.0f);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    two_rows_dot<kWholeBlocks>(w.codes.data() + rr[0] * rb, w.codes.data() + rr[1] * rb, sf[0], sf[1], x, lut, nb,
                               w.group, acc0, acc1);
    const float sums[2] = {_mm512_reduce_add_ps(acc0), _mm512_reduce_add_ps(acc1)};
    for (int i = 0; i < (pair ? 2 : 1); ++i) {
      const float m = w.asymmetric ? mins_dot(mf[i], a.xsum.data(), ng) : 0.0f;
      y[r + i - r0] = (sums[i] + m) * w.tensor_scale;
    }
  }
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const bool whole = w.group % 32 == 0;
  if (w.bf16_scales) {
    whole ? gemv_t<true, true>(w, a, r0, r1, y) : gemv_t<true, false>(w, a, r0, r1, y);
  } else {
    whole ? gemv_t<false, true>(w, a, r0, r1, y) : gemv_t<false, false>(w, a, r0, r1, y);
  }
}

template <bool kBf16>
void dequantize_t(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  const int64_t ng = w.n_groups(), rb = w.row_bytes();
  const int64_t ngp = (ng + 15) / 16 * 16;
  const __m512 lut = _mm512_loadu_ps(w.lut);
  std::vector<float> scratch(static_cast<size_t>(2 * ngp));  // the row's scales, then its mins: [2][ngp]
  float* sf = scratch.data();
  float* mf = scratch.data() + ngp;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    scales_to_float<kBf16>(w.scales.data() + r * ng, ng, sf);
    if (w.asymmetric) scales_to_float<kBf16>(w.mins.data() + r * ng, ng, mf);
    float* o = out + (r - r0) * w.cols;
    // 16 columns at a time; g follows c without a division (group is a multiple of 16).
    for (int64_t c = 0, g = 0, g_end = w.group; c < w.cols; c += 16) {
      if (c == g_end) {
        ++g;
        g_end += w.group;
      }
      __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 16 * (c / 32))));
      if (c % 32 != 0) q = _mm512_srli_epi32(q, 4);
      __m512 v = _mm512_mul_ps(_mm512_permutexvar_ps(q, lut), _mm512_set1_ps(sf[g]));
      if (w.asymmetric) v = _mm512_add_ps(v, _mm512_set1_ps(mf[g]));
      v = _mm512_mul_ps(v, _mm512_set1_ps(w.tensor_scale));
      const int64_t n = std::min<int64_t>(16, w.cols - c);
      _mm512_mask_storeu_ps(o + c, static_cast<__mmask16>((1u << n) - 1), v);
    }
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  if (w.bf16_scales) {
    dequantize_t<true>(w, r0, r1, out);
  } else {
    dequantize_t<false>(w, r0, r1, out);
  }
}

}  // namespace

PackedKernels packed_kernels_lut4_avx512() { return {gemv, dequantize_rows, Isa::kAvx512}; }

}  // namespace lowbit
