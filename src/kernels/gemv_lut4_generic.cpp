// kLut4 kernels in portable C++ (packed_matrix.h): 16 lanes per group, as the
// SIMD kernels, so the compiler can vectorize them for the baseline ISA.
#include "core/half.h"
#include "kernels/packed_matrix.h"
#include "kernels/rowwise_generic.h"

namespace lowbit {
namespace {

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  generic::gemv_grouped_table(w, a, r0, r1, y, [](const uint8_t* row, int64_t b, uint32_t* lo, uint32_t* hi) {
    const uint8_t* q = row + 16 * b;  // byte j: column 32b + j low nibble, 32b + 16 + j high nibble
    for (int j = 0; j < 16; ++j) {
      lo[j] = q[j] & 0xF;
      hi[j] = q[j] >> 4;
    }
  });
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  const int64_t ng = w.n_groups();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * w.row_bytes();
    float* o = out + (r - r0) * w.cols;
    for (int64_t c = 0; c < w.cols; ++c) {
      const uint8_t byte = codes[16 * (c / 32) + (c % 16)];
      const uint32_t code = (c % 32) < 16 ? (byte & 0xF) : (byte >> 4);
      const int64_t g = r * ng + c / w.group;
      float v = w.lut[code] * half_code_to_float(w.scales[g], w.bf16_scales);
      if (w.asymmetric) v += half_code_to_float(w.mins[g], w.bf16_scales);
      o[c] = v * w.tensor_scale;
    }
  }
}

}  // namespace

PackedKernels packed_kernels_lut4_generic() { return {gemv, dequantize_rows, Isa::kGeneric}; }

}  // namespace lowbit
