// kFp16 / kBf16 kernels in portable C++ (packed_matrix.h).
#include "core/half.h"
#include "kernels/rowwise_generic.h"

namespace lowbit {
namespace {

uint16_t half_at(const uint8_t* row, int64_t c) { return static_cast<uint16_t>(row[2 * c] | (row[2 * c + 1] << 8)); }
float decode_fp16(const uint8_t* row, int64_t c) { return fp16_to_float(half_at(row, c)); }
float decode_bf16(const uint8_t* row, int64_t c) { return bf16_to_float(half_at(row, c)); }

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  auto f = [&w](int64_t) { return w.tensor_scale; };
  if (w.kind == PackedKind::kFp16) {
    generic::gemv_rows(w, a, r0, r1, y, decode_fp16, f);
  } else {
    generic::gemv_rows(w, a, r0, r1, y, decode_bf16, f);
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  auto f = [&w](int64_t) { return w.tensor_scale; };
  if (w.kind == PackedKind::kFp16) {
    generic::dequantize_rows(w, r0, r1, out, decode_fp16, f);
  } else {
    generic::dequantize_rows(w, r0, r1, out, decode_bf16, f);
  }
}

}  // namespace

PackedKernels packed_kernels_half_generic() { return {gemv, dequantize_rows, Isa::kGeneric}; }

}  // namespace lowbit
