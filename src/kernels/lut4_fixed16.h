// kLut4 GEMV with 16-bit fixed-point activations: the decode kernel for 4-bit
// weights whose table is a scaled integer table (INT4 with or without a
// minimum; FP4 E2M1, i.e. MXFP4 and NVFP4, times 2).
//
// Why: the FP32 lut4 GEMV spends 6 vector uops per 32 weights (a table
// permute and an FMA per 16 weights), which caps one core below the rate at
// which DRAM delivers 4-bit weights. With integer weights the dot products run
// on VNNI (vpdpbusd: 64 byte products per uop), about 10 uops per 128 weights.
//
// Numbers. Per call, x is quantized per tensor to 16 bits:
//   x[c] ≈ scale * xi[c],  scale = max|x| / 32639,  xi = round(x / scale)
// (32639 = 127 * 256 + 127, so xi = 256 hi + lo splits into two int8 bytes;
// the error, at most scale / 2 per element, is below BF16 rounding for every
// element above max|x| / 128). Weights are u[code] = lut[code] * k + off, a
// byte in [0, 255] for one power of two k and one offset off. Then per row
//   y = tensor_scale * scale * sum_g [ s_g / k * (sum_{c in g} u_c xi_c - off * xs_g) + m_g * xs_g ]
// with xs_g = sum_{c in g} xi_c; the inner sums are exact in int32.
//
// Activation bytes (Fixed16Activation::bytes), per 128-column chunk ch, four
// 64-byte vectors P = 0..3 in the order of a 64-byte load of kLut4 codes
// (byte p of the load: low nibble column 32 (p / 16) + p % 16, high nibble
// column 32 (p / 16) + 16 + p % 16, within the chunk):
//   P = 0: lo of the low-nibble columns   P = 1: lo of the high-nibble columns
//   P = 2: hi of the low-nibble columns   P = 3: hi of the high-nibble columns
// Columns past `cols` hold 0.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/packed_matrix.h"

namespace lowbit {

inline constexpr int32_t kFixed16Max = 127 * 256 + 127;

// The byte table of a kLut4 matrix: lut[code] = (u[code] - offset) / multiplier.
struct Lut4ByteTable {
  bool ok = false;       // false: the table is not an integer table at any power-of-two scale up to 16
  uint8_t u[16] = {};    // byte value of each code
  int32_t offset = 0;    // u[code] - offset = lut[code] * multiplier
  float multiplier = 1;  // a power of two
  bool identity = false; // u[code] == code (no byte shuffle needed)
};
Lut4ByteTable lut4_byte_table(const PackedMatrix& w);

// Whether the fixed-point kernels take this matrix: kLut4, a byte table, and a
// group of 16, 32, 64 or a multiple of 128 columns (the scales line up with the
// 32-bit lanes of a 128-column chunk, or with its nibble halves).
bool lut4_fixed16_eligible(const PackedMatrix& w);
// Eligible, and every table byte u <= 63, so that the AVX2 kernel's int16 sums of
// four u * byte products (vpmaddubsw, then one 16-bit add) cannot saturate or
// wrap: 4 * 128 * 63 < 2^15 (gemv_lut4_fixed16_avx2.cpp). INT4 and FP4 qualify.
bool lut4_fixed16_avx2_eligible(const PackedMatrix& w);

// xi[0, n) = round(x / scale) clamped to ±kFixed16Max, scale = max|x| / kFixed16Max
// (0 for an all-zero x). False when x has a NaN or infinity. Every layout's
// portable preparation quantizes x this way.
bool fixed16_values(const float* x, int64_t n, float* scale, std::vector<int32_t>& xi);

// xi = 256 hi + lo with lo its two's-complement low byte (both signed bytes,
// |hi| <= 127 for |xi| <= kFixed16Max): the split every layout stores.
struct Fixed16Bytes {
  int8_t lo, hi;
};
inline Fixed16Bytes fixed16_bytes(int32_t xi) {
  const int8_t lo = static_cast<int8_t>(static_cast<uint8_t>(xi & 0xFF));
  return {lo, static_cast<int8_t>((xi - lo) / 256)};
}

// Fills a.fixed from x[0, cols) (a.x must already hold x padded). Leaves
// a.fixed.valid false when x has a NaN or infinity (the kernels then run FP32),
// or when the layout is not eligible.
void prepare_lut4_fixed16(const PackedMatrix& w, PackedActivation& a);

// The reference: the formula above in double, from a.fixed. y[r - r0], r in [r0, r1).
void gemv_lut4_fixed16_reference(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y);

// Bound on |kernel - gemv_lut4_fixed16_reference| for row r: FP32 rounding of
// the per-chunk conversions, scale products and sums (depth * 2^-24 * magnitude).
double lut4_fixed16_rounding_bound(const PackedMatrix& w, const PackedActivation& a, int64_t r);
// Bound on |fixed-point reference - exact W x| for row r of any layout: the
// 16-bit quantization of x, scale / 2 * sum_c |W[r, c]| (plus FP32 slack).
double fixed16_quantization_bound(const PackedMatrix& w, const PackedActivation& a, int64_t r);

}  // namespace lowbit
