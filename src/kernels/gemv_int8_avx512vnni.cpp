// kInt8Row GEMV with 16-bit fixed-point activations on AVX-512 VNNI
// (int8_fixed16.h has the arithmetic and the activation byte planes).
//
// Per 64 columns of a row: one load, one XOR (q + 128 as an unsigned byte) and
// two vpdpbusd (against the lo and the hi bytes of xi) into two int32
// accumulators that run over the whole row; one exact integer result per row,
// scaled once. 4 vector uops per 64 weights, against 12 for int8/avx512. Two
// rows run together and share the activation loads; codes are prefetched at two
// distances (stream_prefetch.h).
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <vector>

#include "kernels/fixed16_avx512.h"
#include "kernels/int8_fixed16.h"
#include "kernels/packed_matrix.h"
#include "kernels/stream_prefetch.h"

namespace lowbit {
namespace {

// Codes of 64 columns from i, as unsigned bytes q + 128 (the last step may hold 32 columns).
inline __m512i biased_codes(const uint8_t* row, int64_t i, int64_t full, __mmask64 tail) {
  prefetch_stream(row + 64 * i);
  const __m512i q = i < full ? _mm512_loadu_si512(row + 64 * i) : _mm512_maskz_loadu_epi8(tail, row + 64 * i);
  return _mm512_xor_si512(q, _mm512_set1_epi8(static_cast<char>(0x80)));
}

// sum_c q_c xi_c of one row from its two accumulators (lo and hi bytes of xi).
inline int64_t row_dot(__m512i acc_lo, __m512i acc_hi, int64_t total) {
  return 256 * static_cast<int64_t>(_mm512_reduce_add_epi32(acc_hi)) + _mm512_reduce_add_epi32(acc_lo) - 128 * total;
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  // Not prepared (layout not eligible) or x not finite: the FP32 kernel.
  if (!a.fixed.valid) return packed_kernels_int8_avx512().gemv(w, a, r0, r1, y);
  const int64_t plane = int8_fixed16_plane(w), steps = plane / 64, full = w.cols_padded / 64, rb = w.row_bytes();
  const __mmask64 tail = (w.cols_padded % 64) == 0 ? 0 : (~0ull >> (64 - w.cols_padded % 64));
  const int8_t* lo = a.fixed.bytes.data();
  const int8_t* hi = lo + plane;
  const double out_scale = static_cast<double>(a.fixed.scale) * w.tensor_scale;
  for (int64_t r = r0; r < r1; r += 2) {
    const bool pair = r + 1 < r1;  // a lone last row runs as both rows, its copy discarded
    const uint8_t* p0 = w.codes.data() + r * rb;
    const uint8_t* p1 = pair ? p0 + rb : p0;
    __m512i lo0 = _mm512_setzero_si512(), hi0 = _mm512_setzero_si512();
    __m512i lo1 = _mm512_setzero_si512(), hi1 = _mm512_setzero_si512();
    for (int64_t i = 0; i < steps; ++i) {
      const __m512i xl = _mm512_loadu_si512(lo + 64 * i), xh = _mm512_loadu_si512(hi + 64 * i);
      const __m512i q0 = biased_codes(p0, i, full, tail), q1 = biased_codes(p1, i, full, tail);
      lo0 = _mm512_dpbusd_epi32(lo0, q0, xl);
      hi0 = _mm512_dpbusd_epi32(hi0, q0, xh);
      lo1 = _mm512_dpbusd_epi32(lo1, q1, xl);
      hi1 = _mm512_dpbusd_epi32(hi1, q1, xh);
    }
    y[r - r0] = static_cast<float>(static_cast<double>(row_dot(lo0, hi0, a.fixed.total)) * out_scale * w.row_scales[r]);
    if (pair) {
      y[r + 1 - r0] =
          static_cast<float>(static_cast<double>(row_dot(lo1, hi1, a.fixed.total)) * out_scale * w.row_scales[r + 1]);
    }
  }
}

// prepare_int8_fixed16 (int8_fixed16.cpp) 16 columns at a time, as lut4/avx512vnni does.
void prepare(const PackedMatrix& w, PackedActivation& a) {
  Fixed16Activation& f = a.fixed;
  f.valid = false;
  float amax = 0.0f;
  if (!int8_fixed16_eligible(w) || !fixed16_absmax_avx512(a.x.data(), w.cols_padded, &amax)) return;
  f.scale = amax / static_cast<float>(kFixed16Max);
  const __m512 inv = _mm512_set1_ps(amax > 0.0f ? static_cast<float>(kFixed16Max) / amax : 0.0f);
  const int64_t plane = int8_fixed16_plane(w);
  f.bytes.assign(static_cast<size_t>(2 * plane), 0);
  int64_t total = 0;
  for (int64_t c = 0; c < w.cols_padded; c += 16) {
    const Fixed16Lanes v = fixed16_lanes(a.x.data() + c, inv);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(f.bytes.data() + c), v.lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(f.bytes.data() + plane + c), v.hi);
    total += _mm512_reduce_add_epi32(v.xi);
  }
  f.group_sums.clear();  // one group, the row: its sum is `total`
  f.total = total;
  f.valid = true;
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  packed_kernels_int8_avx512().dequantize_rows(w, r0, r1, out);
}

}  // namespace

PackedKernels packed_kernels_int8_avx512vnni() {
  return {gemv, dequantize_rows, Isa::kAvx512Vnni, prepare};
}

}  // namespace lowbit
