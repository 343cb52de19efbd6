// kInt8Row kernels with AVX2: 8 INT8 codes sign-extended to 32 bits and
// converted to FP32 per FMA (W8A16: FP32 activations, FP32 accumulation).
#include "kernels/rowwise_avx2.h"

namespace lowbit {
namespace {

struct DecodeInt8 {
  static constexpr int64_t kBytes = 8;
  __m256 operator()(const uint8_t* p) const {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
};

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  avx2::gemv_rows(w, a, r0, r1, y, DecodeInt8{}, [&w](int64_t r) { return w.row_scales[r] * w.tensor_scale; });
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  avx2::dequantize_rows(w, r0, r1, out, DecodeInt8{}, [&w](int64_t r) { return w.row_scales[r] * w.tensor_scale; });
}

}  // namespace

PackedKernels packed_kernels_int8_avx2() { return {gemv, dequantize_rows, Isa::kAvx2}; }

}  // namespace lowbit
