// kPtq161 kernels with AVX2 (packed_matrix.h). Salient part: 8 bytes of a
// 32-position block widen to 8 lanes (vpmovzxbd); low nibbles are positions
// 0..7 / 8..15, high nibbles 16..23 / 24..31; FMAs accumulate q * x'. Binarised
// part: each sign byte is broadcast, ANDed with the lane bits 1, 2, .., 128 and
// compared, giving an 8-lane mask that selects x' into the sum P_b. The scales
// enter once per row as in the generic kernel.
#include <immintrin.h>

#include "core/half.h"
#include "kernels/packed_matrix.h"

namespace lowbit {
namespace {

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const int64_t sp = w.salient_padded, nblk = w.ptq161_blocks(), rb = w.row_bytes(), rs = w.ptq161_row_scales();
  const int64_t bytes = w.group / 8;  // sign bytes per block
  const float* x = a.x.data();
  const __m256i low = _mm256_set1_epi32(0xF);
  const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    const uint16_t* sc = w.scales.data() + r * rs;
    __m256 acc4[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < sp / 32; ++b) {
      for (int h = 0; h < 2; ++h) {  // bytes 8h .. 8h + 7: positions 8h + j (low) and 16 + 8h + j (high)
        const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + 16 * b + 8 * h)));
        acc4[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, low)), _mm256_loadu_ps(x + 32 * b + 8 * h),
                                  acc4[h]);
        acc4[2 + h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)),
                                      _mm256_loadu_ps(x + 32 * b + 16 + 8 * h), acc4[2 + h]);
      }
    }
    const float qx = hsum(_mm256_add_ps(_mm256_add_ps(acc4[0], acc4[1]), _mm256_add_ps(acc4[2], acc4[3])));
    float acc = fp16_to_float(sc[0]) * qx + fp16_to_float(sc[1]) * a.xsum[0];
    const uint8_t* signs = codes + sp / 2;
    const float* xb = x + sp;
    for (int64_t b = 0; b < nblk; ++b) {
      __m256 p0 = _mm256_setzero_ps(), p1 = _mm256_setzero_ps();
      for (int64_t k = b * bytes; k < (b + 1) * bytes; k += 2) {
        const __m256i m0 = _mm256_and_si256(_mm256_set1_epi32(signs[k]), lane_bit);
        const __m256i m1 = _mm256_and_si256(_mm256_set1_epi32(signs[k + 1]), lane_bit);
        p0 = _mm256_add_ps(p0, _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(m0, lane_bit)),
                                             _mm256_loadu_ps(xb + 8 * k)));
        p1 = _mm256_add_ps(p1, _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(m1, lane_bit)),
                                             _mm256_loadu_ps(xb + 8 * k + 8)));
      }
      const float plus = hsum(_mm256_add_ps(p0, p1)), s = a.xsum[1 + b];
      acc += fp16_to_float(sc[2 + 2 * b]) * (2.0f * plus - s) + fp16_to_float(sc[3 + 2 * b]) * s;
    }
    y[r - r0] = acc;
  }
}

}  // namespace

PackedKernels packed_kernels_ptq161_avx2() {
  return {gemv, packed_kernels_ptq161_generic().dequantize_rows, Isa::kAvx2, nullptr};
}

}  // namespace lowbit
