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
// the hardware prefetcher alone leaves the shuffle-bound loop waiting on DRAM.
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "core/half.h"
#include "kernels/packed_matrix.h"

namespace lowbit {
namespace {

constexpr int kPrefetchBytes = 512;

template <bool kBf16>
inline float scale16(uint16_t code) {
  if constexpr (kBf16) return bf16_to_float(code);
  return _cvtsh_ss(code);
}

// out[0:n] = the FP16 or BF16 codes sc[0:n] as floats.
template <bool kBf16>
void scales_to_float(const uint16_t* sc, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t m = std::min<int64_t>(16, n - i);
    const __mmask16 k = static_cast<__mmask16>((1u << m) - 1);
    const __m256i h = _mm256_maskz_loadu_epi16(k, sc + i);
    __m512 v;
    if constexpr (kBf16) {
      v = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
      v = _mm512_cvtph_ps(h);
    }
    _mm512_mask_storeu_ps(out + i, k, v);
  }
}

// 16 x 32-bit code lanes of block b: the low nibbles are columns 32b..32b+15.
inline __m512i block_codes(const uint8_t* codes, int64_t b) {
  _mm_prefetch(reinterpret_cast<const char*>(codes + 16 * b + kPrefetchBytes), _MM_HINT_T0);
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 16 * b)));
}

// kRows rows starting at codes[i] with FP32 scales sf[i][ng]: acc[i] += sum over
// groups of scale * sum_{c in group} lut[code_c] x_c.
//   kWholeBlocks: group is a multiple of 32, so both halves of a block share a scale.
//   otherwise:    each 16-column half takes the scale of its own group.
template <int kRows, bool kWholeBlocks>
inline void rows_dot(const uint8_t* const* codes, const float* const* sf, const float* x, __m512 lut, int64_t nb,
                     int group, __m512* acc) {
  if constexpr (kWholeBlocks) {
    const int64_t bpg = group / 32;
    for (int64_t b0 = 0, g = 0; b0 < nb; b0 += bpg, ++g) {
      __m512 lo[kRows], hi[kRows];
      for (int i = 0; i < kRows; ++i) lo[i] = hi[i] = _mm512_setzero_ps();
      for (int64_t b = b0; b < std::min(nb, b0 + bpg); ++b) {
        const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        for (int i = 0; i < kRows; ++i) {
          const __m512i q = block_codes(codes[i], b);
          lo[i] = _mm512_fmadd_ps(_mm512_permutexvar_ps(q, lut), x0, lo[i]);
          hi[i] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), lut), x1, hi[i]);
        }
      }
      for (int i = 0; i < kRows; ++i) acc[i] = _mm512_fmadd_ps(_mm512_add_ps(lo[i], hi[i]), _mm512_set1_ps(sf[i][g]), acc[i]);
    }
  } else {
    for (int64_t b = 0; b < nb; ++b) {
      const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
      const int64_t g_lo = 32 * b / group, g_hi = (32 * b + 16) / group;
      for (int i = 0; i < kRows; ++i) {
        const __m512i q = block_codes(codes[i], b);
        const __m512 wl = _mm512_mul_ps(_mm512_permutexvar_ps(q, lut), _mm512_set1_ps(sf[i][g_lo]));
        const __m512 wh = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), lut), _mm512_set1_ps(sf[i][g_hi]));
        acc[i] = _mm512_fmadd_ps(wl, x0, acc[i]);
        acc[i] = _mm512_fmadd_ps(wh, x1, acc[i]);
      }
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
  constexpr int kRows = 2;
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups(), rb = w.row_bytes();
  const __m512 lut = _mm512_loadu_ps(w.lut);
  const float* x = a.x.data();
  std::vector<float> scratch(static_cast<size_t>(2 * kRows * ng));  // [kRows][ng] scales, then [kRows][ng] mins
  for (int64_t r = r0; r < r1; r += kRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kRows, r1 - r));
    const uint8_t* codes[kRows];
    const float* sf[kRows];
    __m512 acc[kRows];
    for (int i = 0; i < kRows; ++i) {
      const int64_t ri = r + std::min(i, rows - 1);  // a lone last row runs twice, its copy discarded
      codes[i] = w.codes.data() + ri * rb;
      scales_to_float<kBf16>(w.scales.data() + ri * ng, ng, scratch.data() + i * ng);
      if (w.asymmetric) scales_to_float<kBf16>(w.mins.data() + ri * ng, ng, scratch.data() + (kRows + i) * ng);
      sf[i] = scratch.data() + i * ng;
      acc[i] = _mm512_setzero_ps();
    }
    rows_dot<kRows, kWholeBlocks>(codes, sf, x, lut, nb, w.group, acc);
    for (int i = 0; i < rows; ++i) {
      float sum = _mm512_reduce_add_ps(acc[i]);
      if (w.asymmetric) sum += mins_dot(scratch.data() + (kRows + i) * ng, a.xsum.data(), ng);
      y[r + i - r0] = sum * w.tensor_scale;
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
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups(), rb = w.row_bytes();
  const __m512 lut = _mm512_loadu_ps(w.lut);
  const __m512i nibble = _mm512_set1_epi32(0xF);
  const __m512 ts = _mm512_set1_ps(w.tensor_scale);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    const uint16_t* sc = w.scales.data() + r * ng;
    const uint16_t* mn = w.asymmetric ? w.mins.data() + r * ng : nullptr;
    float* o = out + (r - r0) * w.cols;
    for (int64_t b = 0; b < nb; ++b) {
      const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 16 * b)));
      const __m512i idx[2] = {_mm512_and_si512(q, nibble), _mm512_srli_epi32(q, 4)};
      for (int h = 0; h < 2; ++h) {
        const int64_t c = 32 * b + 16 * h;
        if (c >= w.cols) break;
        const int64_t g = c / w.group;
        __m512 v = _mm512_mul_ps(_mm512_permutexvar_ps(idx[h], lut), _mm512_set1_ps(scale16<kBf16>(sc[g])));
        if (mn != nullptr) v = _mm512_add_ps(v, _mm512_set1_ps(scale16<kBf16>(mn[g])));
        v = _mm512_mul_ps(v, ts);
        const int64_t n = std::min<int64_t>(16, w.cols - c);
        _mm512_mask_storeu_ps(o + c, static_cast<__mmask16>((1u << n) - 1), v);
      }
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

PackedKernels packed_kernels_lut4_avx512() { return {gemv, dequantize_rows, Isa::kAvx512, "lut4/avx512"}; }

}  // namespace lowbit
