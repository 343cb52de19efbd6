// kBits kernels with AVX-512 (packed_matrix.h). The 16 codes of a half block come
// from one 32-bit word broadcast to 16 lanes and shifted right by 2i in lane i
// (vpsrlvd), masked to two bits; 3-bit codes OR in 4 where the half's 16-bit
// third-bit word (used directly as a lane mask) is set. vpermps looks the codes
// up in the table; FMAs accumulate lut * x per group and the group sum is
// scaled, in the same lanes and order as the kLut4 kernels.
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/half.h"
#include "kernels/packed_matrix.h"
#include "kernels/scale_code_f16c.h"

namespace lowbit {
namespace {


// Table indices of half h of the 32-column block at `block`.
template <bool kThree>
inline __m512i half_codes(const uint8_t* block, int h) {
  const __m512i shifts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  uint32_t lo;
  std::memcpy(&lo, block + 4 * h, 4);
  __m512i v =
      _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(static_cast<int>(lo)), shifts), _mm512_set1_epi32(3));
  if constexpr (kThree) {
    uint16_t hi;
    std::memcpy(&hi, block + 8 + 2 * h, 2);
    v = _mm512_mask_or_epi32(v, static_cast<__mmask16>(hi), v, _mm512_set1_epi32(4));
  }
  return v;
}

template <bool kBf16, bool kThree>
void gemv_t(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups(), rb = w.row_bytes(), bb = kThree ? 12 : 8;
  const int64_t step = std::max<int64_t>(1, w.group / 32);  // blocks per group
  const __m512 lut = _mm512_loadu_ps(w.lut);
  const float* x = a.x.data();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    const uint16_t* sc = w.scales.data() + r * ng;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += step) {
      const int64_t b1 = std::min(nb, b0 + step);
      __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
      for (int64_t b = b0; b < b1; ++b) {
        const uint8_t* block = codes + bb * b;
        lo = _mm512_fmadd_ps(_mm512_permutexvar_ps(half_codes<kThree>(block, 0), lut), _mm512_loadu_ps(x + 32 * b), lo);
        hi = _mm512_fmadd_ps(_mm512_permutexvar_ps(half_codes<kThree>(block, 1), lut), _mm512_loadu_ps(x + 32 * b + 16),
                             hi);
      }
      const int64_t g_lo = 32 * b0 / w.group, g_hi = (32 * b0 + 16) / w.group;
      acc = _mm512_fmadd_ps(lo, _mm512_set1_ps(scale16<kBf16>(sc[g_lo])), acc);
      acc = _mm512_fmadd_ps(hi, _mm512_set1_ps(scale16<kBf16>(sc[g_hi])), acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    if (w.asymmetric) {
      const uint16_t* mn = w.mins.data() + r * ng;
      for (int64_t g = 0; g < ng; ++g) sum += scale16<kBf16>(mn[g]) * a.xsum[g];
    }
    y[r - r0] = sum * w.tensor_scale;
  }
}

template <bool kBf16, bool kThree>
void dequantize_t(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups(), rb = w.row_bytes(), bb = kThree ? 12 : 8;
  const __m512 lut = _mm512_loadu_ps(w.lut);
  const __m512 ts = _mm512_set1_ps(w.tensor_scale);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    const uint16_t* sc = w.scales.data() + r * ng;
    const uint16_t* mn = w.asymmetric ? w.mins.data() + r * ng : nullptr;
    float* o = out + (r - r0) * w.cols;
    for (int64_t b = 0; b < nb; ++b) {
      for (int h = 0; h < 2; ++h) {
        const int64_t c = 32 * b + 16 * h;
        if (c >= w.cols) break;
        const int64_t g = c / w.group;
        __m512 v = _mm512_mul_ps(_mm512_permutexvar_ps(half_codes<kThree>(codes + bb * b, h), lut),
                                 _mm512_set1_ps(scale16<kBf16>(sc[g])));
        if (mn != nullptr) v = _mm512_add_ps(v, _mm512_set1_ps(scale16<kBf16>(mn[g])));
        v = _mm512_mul_ps(v, ts);
        const int64_t n = std::min<int64_t>(16, w.cols - c);
        _mm512_mask_storeu_ps(o + c, static_cast<__mmask16>((1u << n) - 1), v);
      }
    }
  }
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  if (w.code_bits == 3) {
    w.bf16_scales ? gemv_t<true, true>(w, a, r0, r1, y) : gemv_t<false, true>(w, a, r0, r1, y);
  } else {
    w.bf16_scales ? gemv_t<true, false>(w, a, r0, r1, y) : gemv_t<false, false>(w, a, r0, r1, y);
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  if (w.code_bits == 3) {
    w.bf16_scales ? dequantize_t<true, true>(w, r0, r1, out) : dequantize_t<false, true>(w, r0, r1, out);
  } else {
    w.bf16_scales ? dequantize_t<true, false>(w, r0, r1, out) : dequantize_t<false, false>(w, r0, r1, out);
  }
}

}  // namespace

PackedKernels packed_kernels_bits_avx512() { return {gemv, dequantize_rows, Isa::kAvx512}; }

}  // namespace lowbit
