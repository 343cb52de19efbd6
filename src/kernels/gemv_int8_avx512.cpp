// kInt8Row kernels with AVX-512: 16 INT8 codes sign-extended to 32 bits and
// converted to FP32 per FMA (W8A16: FP32 activations, FP32 accumulation).
#include "kernels/rowwise_avx512.h"

namespace lowbit {
namespace {

struct DecodeInt8 {
  static constexpr int64_t kBytes = 16;
  __m512 operator()(const uint8_t* p) const {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
};

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  avx512::gemv_rows(w, a, r0, r1, y, DecodeInt8{}, [&w](int64_t r) { return w.row_scales[r] * w.tensor_scale; });
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  avx512::dequantize_rows(w, r0, r1, out, DecodeInt8{}, [&w](int64_t r) { return w.row_scales[r] * w.tensor_scale; });
}

}  // namespace

PackedKernels packed_kernels_int8_avx512() { return {gemv, dequantize_rows, Isa::kAvx512}; }

}  // namespace lowbit
