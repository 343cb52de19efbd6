// kInt8Row GEMV on NEON (packed_matrix.h), FP32 activations: codes widened to
// FP32 (exact), 16 lanes, times row_scale * tensor_scale, as the portable kernel
// (rowwise_generic.h). Error bound: packed_gemv_bound.
#include "kernels/neon_lanes.h"
#include "kernels/packed_matrix.h"

namespace lowbit {
namespace {

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const float* x = a.x.data();
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* p = reinterpret_cast<const int8_t*>(w.codes.data() + r * w.row_bytes());  // [cols_padded]
    neon::Lanes16 acc = neon::zero16();
    for (int64_t c = 0; c < w.cols_padded; c += 16) {
      neon::fma16(acc, neon::s8_to_f32(vld1q_s8(p + c)), neon::load16(x + c));
    }
    y[r - r0] = neon::sum16(acc) * (w.row_scales[r] * w.tensor_scale);
  }
}

}  // namespace

PackedKernels packed_kernels_int8_neon() {
  return {gemv, packed_kernels_int8_generic().dequantize_rows, Isa::kNeon};
}

}  // namespace lowbit
