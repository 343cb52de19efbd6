// kFp16 / kBf16 kernels with AVX-512: vcvtph2ps for binary16, a 16-bit shift for
// bfloat16 (its bits are the top half of the FP32 value).
#include "kernels/rowwise_avx512.h"

namespace lowbit {
namespace {

struct DecodeFp16 {
  static constexpr int64_t kBytes = 32;
  __m512 operator()(const uint8_t* p) const {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
};

struct DecodeBf16 {
  static constexpr int64_t kBytes = 32;
  __m512 operator()(const uint8_t* p) const {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
};

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  auto f = [&w](int64_t) { return w.tensor_scale; };
  if (w.kind == PackedKind::kFp16) {
    avx512::gemv_rows(w, a, r0, r1, y, DecodeFp16{}, f);
  } else {
    avx512::gemv_rows(w, a, r0, r1, y, DecodeBf16{}, f);
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  auto f = [&w](int64_t) { return w.tensor_scale; };
  if (w.kind == PackedKind::kFp16) {
    avx512::dequantize_rows(w, r0, r1, out, DecodeFp16{}, f);
  } else {
    avx512::dequantize_rows(w, r0, r1, out, DecodeBf16{}, f);
  }
}

}  // namespace

PackedKernels packed_kernels_half_avx512() { return {gemv, dequantize_rows, Isa::kAvx512}; }

}  // namespace lowbit
