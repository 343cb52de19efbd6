// kInt8Row kernels in portable C++ (packed_matrix.h).
#include "kernels/rowwise_generic.h"

namespace lowbit {
namespace {

float decode(const uint8_t* row, int64_t c) { return static_cast<float>(static_cast<int8_t>(row[c])); }

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  generic::gemv_rows(w, a, r0, r1, y, decode, [&w](int64_t r) { return w.row_scales[r] * w.tensor_scale; });
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  generic::dequantize_rows(w, r0, r1, out, decode, [&w](int64_t r) { return w.row_scales[r] * w.tensor_scale; });
}

}  // namespace

PackedKernels packed_kernels_int8_generic() { return {gemv, dequantize_rows, Isa::kGeneric}; }

}  // namespace lowbit
