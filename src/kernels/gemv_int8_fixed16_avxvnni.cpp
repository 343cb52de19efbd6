// int8/avxvnni+fixed16: the kInt8Row GEMV with 16-bit fixed-point activations
// on AVX-VNNI (VEX vpdpbusd, 256 bits), the AVX-512 VNNI kernel's method
// (gemv_int8_avx512vnni.cpp) at half the width. int8_fixed16.h has the
// arithmetic and the activation byte planes; the preparation is the AVX2
// level's (int8/avx2+fixed16), byte for byte.
//
// Per 32 columns of a row: one load, one XOR (q + 128 as an unsigned byte) and
// two vpdpbusd (against the lo and the hi bytes of xi) into two int32
// accumulators over the whole row: 4 vector uops per 32 weights against 6 for
// int8/avx2+fixed16 (two widenings, two vpmaddwd, two adds). The lanes may wrap
// on the way; each of the two lane totals is Σ_c (q_c + 128)·b_c with
// |b_c| ≤ 128, at most 65536 · 255 · 128 < 2^31 in magnitude for the eligible
// widths (int8_fixed16_eligible), so the int32 totals are exact, and
// 256·Σhi + Σlo − 128·total is the reference's integer: the same bits as
// int8/avx2+fixed16 and int8/avx512vnni. Two rows share each activation load.
#include <immintrin.h>

#include "kernels/avx2_lanes.h"
#include "kernels/int8_fixed16.h"
#include "kernels/packed_matrix.h"
#include "kernels/stream_prefetch.h"

namespace lowbit {
namespace {

inline int64_t row_dot(__m256i acc_lo, __m256i acc_hi, int64_t total) {
  // avx2::hsum wraps as the lanes do; the totals fit in int32 (see above).
  return 256 * static_cast<int64_t>(avx2::hsum(acc_hi)) + avx2::hsum(acc_lo) - 128 * total;
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  // Not prepared (layout not eligible) or x not finite: the FP32 kernel.
  if (!a.fixed.valid) return packed_kernels_int8_avx2().gemv(w, a, r0, r1, y);
  const int64_t n = w.cols_padded, plane = int8_fixed16_plane(w), rb = w.row_bytes();
  const int8_t* lo = a.fixed.bytes.data();
  const int8_t* hi = lo + plane;
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const double out_scale = static_cast<double>(a.fixed.scale) * w.tensor_scale;
  for (int64_t r = r0; r < r1; r += 2) {
    const bool pair = r + 1 < r1;  // a lone last row runs as both rows, its copy discarded
    const uint8_t* p0 = w.codes.data() + r * rb;
    const uint8_t* p1 = pair ? p0 + rb : p0;
    __m256i lo0 = _mm256_setzero_si256(), hi0 = _mm256_setzero_si256();
    __m256i lo1 = _mm256_setzero_si256(), hi1 = _mm256_setzero_si256();
    for (int64_t c = 0; c < n; c += 32) {  // n: a multiple of 32
      prefetch_stream(p0 + c);
      prefetch_stream(p1 + c);
      const __m256i xl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo + c));
      const __m256i xh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi + c));
      const __m256i q0 = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p0 + c)), flip);
      const __m256i q1 = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p1 + c)), flip);
      lo0 = _mm256_dpbusd_avx_epi32(lo0, q0, xl);
      hi0 = _mm256_dpbusd_avx_epi32(hi0, q0, xh);
      lo1 = _mm256_dpbusd_avx_epi32(lo1, q1, xl);
      hi1 = _mm256_dpbusd_avx_epi32(hi1, q1, xh);
    }
    // The float steps of int8/avx512vnni, in its order.
    y[r - r0] = static_cast<float>(static_cast<double>(row_dot(lo0, hi0, a.fixed.total)) * out_scale * w.row_scales[r]);
    if (pair) {
      y[r + 1 - r0] =
          static_cast<float>(static_cast<double>(row_dot(lo1, hi1, a.fixed.total)) * out_scale * w.row_scales[r + 1]);
    }
  }
}

}  // namespace

PackedKernels packed_kernels_int8_fixed16_avxvnni() {
  PackedKernels k = packed_kernels_int8_fixed16_avx2();  // its preparation and dequantization
  k.gemv = gemv;
  k.isa = Isa::kAvxVnni;
  return k;
}

}  // namespace lowbit
