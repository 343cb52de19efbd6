// kFp16 / kBf16 kernels with AVX2 + F16C: vcvtph2ps for binary16, a 16-bit
// shift for bfloat16 (its bits are the top half of the FP32 value).
#include "kernels/rowwise_avx2.h"

namespace lowbit {
namespace {

struct DecodeFp16 {
  static constexpr int64_t kBytes = 16;
  __m256 operator()(const uint8_t* p) const {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
};

struct DecodeBf16 {
  static constexpr int64_t kBytes = 16;
  __m256 operator()(const uint8_t* p) const {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
};

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  auto f = [&w](int64_t) { return w.tensor_scale; };
  if (w.kind == PackedKind::kFp16) {
    avx2::gemv_rows(w, a, r0, r1, y, DecodeFp16{}, f);
  } else {
    avx2::gemv_rows(w, a, r0, r1, y, DecodeBf16{}, f);
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  auto f = [&w](int64_t) { return w.tensor_scale; };
  if (w.kind == PackedKind::kFp16) {
    avx2::dequantize_rows(w, r0, r1, out, DecodeFp16{}, f);
  } else {
    avx2::dequantize_rows(w, r0, r1, out, DecodeBf16{}, f);
  }
}

}  // namespace

PackedKernels packed_kernels_half_avx2() { return {gemv, dequantize_rows, Isa::kAvx2}; }

}  // namespace lowbit
