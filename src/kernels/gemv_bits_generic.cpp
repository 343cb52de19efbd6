// kBits kernels in portable C++ (packed_matrix.h): 16 lanes per group, as the
// SIMD kernels (and the kLut4 ones), so the FP32 error bound is the same.
#include "kernels/packed_matrix.h"
#include "kernels/rowwise_generic.h"

namespace lowbit {
namespace {

// The 16 codes of half h of a 32-column block (layout in packed_matrix.h).
void half_codes(const uint8_t* block, int bits, int h, uint32_t* out) {
  const uint32_t lo = static_cast<uint32_t>(block[4 * h]) | static_cast<uint32_t>(block[4 * h + 1]) << 8 |
                      static_cast<uint32_t>(block[4 * h + 2]) << 16 | static_cast<uint32_t>(block[4 * h + 3]) << 24;
  const uint32_t hi =
      bits == 3 ? (static_cast<uint32_t>(block[8 + 2 * h]) | static_cast<uint32_t>(block[9 + 2 * h]) << 8) : 0u;
  for (int i = 0; i < 16; ++i) out[i] = ((lo >> (2 * i)) & 3u) | ((hi >> i) & 1u) << 2;
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const int64_t bb = 4 * w.code_bits;  // bytes per 32-column block
  generic::gemv_grouped_table(w, a, r0, r1, y, [&](const uint8_t* row, int64_t b, uint32_t* lo, uint32_t* hi) {
    half_codes(row + bb * b, w.code_bits, 0, lo);
    half_codes(row + bb * b, w.code_bits, 1, hi);
  });
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + (r - r0) * w.cols;
    for (int64_t c = 0; c < w.cols; ++c) o[c] = packed_value(w, r, c);
  }
}

}  // namespace

PackedKernels packed_kernels_bits_generic() { return {gemv, dequantize_rows, Isa::kGeneric}; }

}  // namespace lowbit
