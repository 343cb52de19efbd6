// kPtq161 kernels, portable (packed_matrix.h): the salient sum s * sum q x' + m * S_sal
// and, per binarised block, alpha * (2 P_b - S_b) + mu * S_b, with S from the
// prepared activation (xsum) and P_b the sum of x' over the block's set bits.
// dequantize_rows is the reference decode (packed_value), shared by every ISA.
#include <cstring>

#include "core/half.h"
#include "kernels/packed_matrix.h"

namespace lowbit {
namespace {

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const int64_t sp = w.salient_padded, nblk = w.ptq161_blocks(), rb = w.row_bytes(), rs = w.ptq161_row_scales();
  const float* x = a.x.data();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    const uint16_t* sc = w.scales.data() + r * rs;
    float qx = 0.0f;
    for (int64_t p = 0; p < sp; ++p) {
      const uint8_t byte = codes[(p / 32) * 16 + (p % 16)];
      qx += static_cast<float>((p % 32) < 16 ? (byte & 0xF) : (byte >> 4)) * x[p];
    }
    float acc = fp16_to_float(sc[0]) * qx + fp16_to_float(sc[1]) * a.xsum[0];
    const uint8_t* signs = codes + sp / 2;
    for (int64_t b = 0; b < nblk; ++b) {
      float plus = 0.0f;
      for (int64_t i = b * w.group; i < (b + 1) * w.group; ++i) {
        if ((signs[i / 8] >> (i % 8)) & 1u) plus += x[sp + i];
      }
      const float s = a.xsum[1 + b];
      acc += fp16_to_float(sc[2 + 2 * b]) * (2.0f * plus - s) + fp16_to_float(sc[3 + 2 * b]) * s;
    }
    y[r - r0] = acc;
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = 0; c < w.cols; ++c) out[(r - r0) * w.cols + c] = packed_value(w, r, c);
  }
}

}  // namespace

PackedKernels packed_kernels_ptq161_generic() { return {gemv, dequantize_rows, Isa::kGeneric, nullptr}; }

}  // namespace lowbit
