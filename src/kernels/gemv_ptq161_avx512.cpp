// kPtq161 kernels with AVX-512 (packed_matrix.h). Salient part: the 16 bytes of a
// 32-position block widen to 16 lanes (vpmovzxbd), the low nibbles give positions
// 0..15 and the high ones 16..31; FMAs accumulate q * x'. Binarised part: each
// 16-bit half of a sign word is a lane mask, and a masked add sums x' over the
// set bits (P_b). The scales enter once per row as in the generic kernel.
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstring>

#include "core/half.h"
#include "kernels/packed_matrix.h"

namespace lowbit {
namespace {

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const int64_t sp = w.salient_padded, nblk = w.ptq161_blocks(), rb = w.row_bytes(), rs = w.ptq161_row_scales();
  const int64_t words = w.group / 32;  // sign words per block
  const float* x = a.x.data();
  const __m512i low = _mm512_set1_epi32(0xF);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    const uint16_t* sc = w.scales.data() + r * rs;
    __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
    for (int64_t b = 0; b < sp / 32; ++b) {
      const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 16 * b)));
      lo = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, low)), _mm512_loadu_ps(x + 32 * b), lo);
      hi = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4)), _mm512_loadu_ps(x + 32 * b + 16), hi);
    }
    float acc = fp16_to_float(sc[0]) * _mm512_reduce_add_ps(_mm512_add_ps(lo, hi)) + fp16_to_float(sc[1]) * a.xsum[0];
    const uint8_t* signs = codes + sp / 2;
    const float* xb = x + sp;
    for (int64_t b = 0; b < nblk; ++b) {
      __m512 p0 = _mm512_setzero_ps(), p1 = _mm512_setzero_ps();
      for (int64_t k = b * words; k < (b + 1) * words; ++k) {
        uint32_t bits;
        std::memcpy(&bits, signs + 4 * k, 4);
        p0 = _mm512_mask_add_ps(p0, static_cast<__mmask16>(bits & 0xFFFF), p0, _mm512_loadu_ps(xb + 32 * k));
        p1 = _mm512_mask_add_ps(p1, static_cast<__mmask16>(bits >> 16), p1, _mm512_loadu_ps(xb + 32 * k + 16));
      }
      const float plus = _mm512_reduce_add_ps(_mm512_add_ps(p0, p1)), s = a.xsum[1 + b];
      acc += fp16_to_float(sc[2 + 2 * b]) * (2.0f * plus - s) + fp16_to_float(sc[3 + 2 * b]) * s;
    }
    y[r - r0] = acc;
  }
}

}  // namespace

PackedKernels packed_kernels_ptq161_avx512() {
  return {gemv, packed_kernels_ptq161_generic().dequantize_rows, Isa::kAvx512, nullptr};
}

}  // namespace lowbit
