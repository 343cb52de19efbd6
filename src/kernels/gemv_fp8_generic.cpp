// kFp8Row kernels in portable C++ (packed_matrix.h): a 256-entry table of the
// E4M3 values built once per call.
#include "kernels/rowwise_generic.h"

namespace lowbit {
namespace {

struct Table {
  float v[256];
  Table() {
    for (int i = 0; i < 256; ++i) v[i] = e4m3_value(static_cast<uint8_t>(i));
  }
};

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const Table t;
  generic::gemv_rows(w, a, r0, r1, y, [&t](const uint8_t* row, int64_t c) { return t.v[row[c]]; },
                     [&w](int64_t r) { return w.row_scales[r] * w.tensor_scale; });
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  const Table t;
  generic::dequantize_rows(w, r0, r1, out, [&t](const uint8_t* row, int64_t c) { return t.v[row[c]]; },
                           [&w](int64_t r) { return w.row_scales[r] * w.tensor_scale; });
}

}  // namespace

PackedKernels packed_kernels_fp8_generic() { return {gemv, dequantize_rows, Isa::kGeneric}; }

}  // namespace lowbit
