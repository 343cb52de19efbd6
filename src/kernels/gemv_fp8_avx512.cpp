// kFp8Row kernels with AVX-512. An E4M3 code moved into binary16 bits,
// h = (code & 0x7F) << 7 | (code & 0x80) << 8, is the value times 2^-8 for
// normals and subnormals alike (exponent bias 15 instead of 7); vcvtph2ps turns
// 16 of them into FP32 and the 2^8 joins the row scale.
#include "kernels/rowwise_avx512.h"

namespace lowbit {
namespace {

struct DecodeFp8 {
  static constexpr int64_t kBytes = 16;
  __m512 operator()(const uint8_t* p) const {
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m256i mag = _mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x7F)), 7);
    const __m256i sign = _mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x80)), 8);
    return _mm512_cvtph_ps(_mm256_or_si256(mag, sign));
  }
};

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  avx512::gemv_rows(w, a, r0, r1, y, DecodeFp8{}, [&w](int64_t r) { return w.row_scales[r] * 256.0f * w.tensor_scale; });
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  avx512::dequantize_rows(w, r0, r1, out, DecodeFp8{},
                          [&w](int64_t r) { return w.row_scales[r] * 256.0f * w.tensor_scale; });
}

}  // namespace

PackedKernels packed_kernels_fp8_avx512() { return {gemv, dequantize_rows, Isa::kAvx512}; }

}  // namespace lowbit
