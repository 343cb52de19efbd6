// kInt8Row GEMV with 16-bit fixed-point activations: the W8A16 decode kernel on
// VNNI. The FP32 kernel (int8/avx512) sign-extends, converts and multiplies 16
// codes per three vector uops; here vpdpbusd takes 64 codes per uop.
//
// x is quantized per call as in lut4_fixed16.h (x ≈ scale * xi, xi = 256 hi + lo).
// vpdpbusd multiplies unsigned by signed bytes, so a code q enters as q + 128:
//   y = tensor_scale * row_scale * scale * (sum_c (q_c + 128) xi_c - 128 * sum_c xi_c)
// with the sums exact in integers.
//
// Activation bytes (Fixed16Activation::bytes): [2][cols64], the lo bytes of xi
// in column order, then the hi bytes; cols64 = cols_padded rounded up to 64,
// zeros past cols. total = sum_c xi_c (group_sums stays empty).
#pragma once

#include <cstdint>

#include "kernels/packed_matrix.h"

namespace lowbit {

// Columns of one byte plane: cols_padded rounded up to 64.
inline int64_t int8_fixed16_plane(const PackedMatrix& w) { return (w.cols_padded + 63) / 64 * 64; }

// kInt8Row with at most 65536 padded columns (the kernel's 32-bit lane sums
// then stay below 2^31).
inline bool int8_fixed16_eligible(const PackedMatrix& w) {
  return w.kind == PackedKind::kInt8Row && w.cols_padded <= 65536;
}

// Fills a.fixed for a kInt8Row matrix (a.x holds x padded); invalid for other
// layouts or a non-finite x.
void prepare_int8_fixed16(const PackedMatrix& w, PackedActivation& a);

// The reference: the formula above in double. y[r - r0], r in [r0, r1).
void gemv_int8_fixed16_reference(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y);

// Bound on |kernel - gemv_int8_fixed16_reference| for row r: the FP32 conversion
// of the exact integer sum and two products.
double int8_fixed16_rounding_bound(const PackedMatrix& w, const PackedActivation& a, int64_t r);

}  // namespace lowbit
