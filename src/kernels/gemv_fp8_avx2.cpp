// kFp8Row kernels with AVX2 + F16C. An E4M3 code moved into binary16 bits,
// h = (code & 0x7F) << 7 | (code & 0x80) << 8, is the value times 2^-8 for
// normals and subnormals alike (exponent bias 15 instead of 7; see e4m3_value);
// vcvtph2ps turns 8 of them into FP32 and the 2^8 joins the row scale.
#include "kernels/rowwise_avx2.h"

namespace lowbit {
namespace {

struct DecodeFp8 {
  static constexpr int64_t kBytes = 8;
  __m256 operator()(const uint8_t* p) const {
    const __m128i v = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    const __m128i mag = _mm_slli_epi16(_mm_and_si128(v, _mm_set1_epi16(0x7F)), 7);
    const __m128i sign = _mm_slli_epi16(_mm_and_si128(v, _mm_set1_epi16(0x80)), 8);
    return _mm256_cvtph_ps(_mm_or_si128(mag, sign));
  }
};

float row_factor(const PackedMatrix& w, int64_t r) { return w.row_scales[r] * 256.0f * w.tensor_scale; }

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  avx2::gemv_rows(w, a, r0, r1, y, DecodeFp8{}, [&w](int64_t r) { return row_factor(w, r); });
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  avx2::dequantize_rows(w, r0, r1, out, DecodeFp8{}, [&w](int64_t r) { return row_factor(w, r); });
}

}  // namespace

PackedKernels packed_kernels_fp8_avx2() { return {gemv, dequantize_rows, Isa::kAvx2}; }

}  // namespace lowbit
