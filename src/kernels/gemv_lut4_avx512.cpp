// kLut4 kernels with AVX-512 (packed_matrix.h). One 16-byte load holds the codes
// of a 32-column block: zero-extended to 16 x 32-bit lanes, the low nibbles are
// columns 0..15 and the high nibbles columns 16..31; vpermps looks both up in the
// 16-entry table held in one register, and FMAs accumulate lut * x per group,
// then the group sum is scaled. Two rows run together so their FMA chains overlap.
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>

#include "core/half.h"
#include "kernels/packed_matrix.h"

namespace lowbit {
namespace {

template <bool kBf16>
inline float scale16(uint16_t code) {
  if constexpr (kBf16) return bf16_to_float(code);
  return _cvtsh_ss(code);
}

// acc += sum over one row's blocks [b0, b1) of lut[code] * x, scaled by the group scales.
template <bool kBf16>
inline void row_group(const uint8_t* codes, const uint16_t* sc, const float* x, __m512 lut, int64_t b0, int64_t b1,
                      int group, __m512& acc) {
  const __m512i nibble = _mm512_set1_epi32(0xF);
  __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
  for (int64_t b = b0; b < b1; ++b) {
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 16 * b)));
    const __m512 wl = _mm512_permutexvar_ps(_mm512_and_si512(q, nibble), lut);
    const __m512 wh = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), lut);
    lo = _mm512_fmadd_ps(wl, _mm512_loadu_ps(x + 32 * b), lo);
    hi = _mm512_fmadd_ps(wh, _mm512_loadu_ps(x + 32 * b + 16), hi);
  }
  const int64_t g_lo = 32 * b0 / group, g_hi = (32 * b0 + 16) / group;
  acc = _mm512_fmadd_ps(lo, _mm512_set1_ps(scale16<kBf16>(sc[g_lo])), acc);
  acc = _mm512_fmadd_ps(hi, _mm512_set1_ps(scale16<kBf16>(sc[g_hi])), acc);
}

template <bool kBf16>
float finish_row(const PackedMatrix& w, const PackedActivation& a, int64_t r, __m512 acc) {
  float sum = _mm512_reduce_add_ps(acc);
  if (w.asymmetric) {
    const int64_t ng = w.n_groups();
    const uint16_t* mn = w.mins.data() + r * ng;
    for (int64_t g = 0; g < ng; ++g) sum += scale16<kBf16>(mn[g]) * a.xsum[g];
  }
  return sum * w.tensor_scale;
}

template <bool kBf16>
void gemv_t(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups(), rb = w.row_bytes();
  const int64_t step = std::max<int64_t>(1, w.group / 32);  // blocks per group
  const __m512 lut = _mm512_loadu_ps(w.lut);
  const float* x = a.x.data();
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) {
    const uint8_t* c0 = w.codes.data() + r * rb;
    const uint8_t* c1 = c0 + rb;
    const uint16_t* s0 = w.scales.data() + r * ng;
    const uint16_t* s1 = s0 + ng;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += step) {
      const int64_t b1 = std::min(nb, b0 + step);
      row_group<kBf16>(c0, s0, x, lut, b0, b1, w.group, acc0);
      row_group<kBf16>(c1, s1, x, lut, b0, b1, w.group, acc1);
    }
    y[r - r0] = finish_row<kBf16>(w, a, r, acc0);
    y[r + 1 - r0] = finish_row<kBf16>(w, a, r + 1, acc1);
  }
  for (; r < r1; ++r) {
    const uint8_t* c0 = w.codes.data() + r * rb;
    const uint16_t* s0 = w.scales.data() + r * ng;
    __m512 acc0 = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += step) row_group<kBf16>(c0, s0, x, lut, b0, std::min(nb, b0 + step), w.group, acc0);
    y[r - r0] = finish_row<kBf16>(w, a, r, acc0);
  }
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  if (w.bf16_scales) {
    gemv_t<true>(w, a, r0, r1, y);
  } else {
    gemv_t<false>(w, a, r0, r1, y);
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
