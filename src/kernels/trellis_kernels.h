// Decode kernels of trellis-coded weights (PackedKind::kTrellis, formats/trellis_code.h):
// what the per-ISA translation units share.
//
// Codebook: value_j(s) = kTrellisTable[h_j(s)] in [-126, 126], h_j a 6-bit XOR of
// shifted copies of the 12-bit state; both SIMD rows keep the 64-byte table in
// registers (AVX-512 VBMI: one vpermb; AVX2: four vpshufb and three blends) and
// look up value + 126 in [0, 252], an unsigned byte.
//
// Lanes (AVX2). A 64-weight sequence is cut into 4 blocks of 16 weights; weight i of
// block b (column 64 q + 16 b + i) is value j = i % V of step t = 16 b / V + i / V,
// whose state starts at bit t k of the sequence's circular bit string, i.e. at
// byte b * 2k/V + lane_byte(i) and bit lane_shift(i) of a 16-byte window that
// starts at byte b * 2k/V (16 k / V bits per block: a whole number of bytes for
// every parameter set). The 12 state bits sit in the window's bytes lane_byte(i)
// .. + 2, shifted right by lane_shift(i) <= 7. The last block reads past the
// string's end: its window is the string's last 2k/V bytes followed by its first
// two (the tail-biting wrap). AVX-512 VBMI decodes a whole sequence per zmm
// (gemv_trellis_avx512vbmi.cpp).
//
// The SIMD GEMVs take x in 16-bit fixed point, as the kLut4 ones do
// (lut4_fixed16.h: x[c] ≈ xs * xi[c], |xi| <= 32639, xi = 256 hi + lo):
//   y = tensor_scale * xs * sum_g s_g * (D_g - 126 * X_g),
//   D_g = sum_{c in g} (value_c + 126) xi_c,   X_g = sum_{c in g} xi_c
// AVX-512: u8 (value + 126) x s8 x byte dot products of four columns per int32
// lane (vpdpbusd), one for lo and one for hi: per lane and sequence at most
// 4 * 252 * 128, over kTrellisFlushCols = 1024 columns (16 sequences) 2.1e6, times
// 256 for hi: 5.3e8 < 2^31. AVX2: (value + 126) x xi as 16-bit products of two
// columns per int32 lane (vpmaddwd): over 1024 columns 128 * 252 * 32639 = 1.05e9
// < 2^31. Then the int32 lanes are converted to FP32 and multiplied by the group scale.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/packed_matrix.h"

namespace lowbit {

// Columns after which the SIMD kernels convert their int32 lanes to FP32 (see above).
inline constexpr int64_t kTrellisFlushCols = 1024;

// Bit, byte offset and right shift, inside a block's window, of lane i's state.
constexpr int trellis_lane_bit(int k, int v, int i) { return (i / v) * k; }
constexpr int trellis_lane_byte(int k, int v, int i) { return trellis_lane_bit(k, v, i) / 8; }
constexpr int trellis_lane_shift(int k, int v, int i) { return trellis_lane_bit(k, v, i) % 8; }
// Bytes of bit string per 16-weight block.
constexpr int trellis_block_bytes(int k, int v) { return 2 * k / v; }

// Calls fn(k, V) with the parameter set's step bits and values per step as
// compile-time constants (std::integral_constant), for the SIMD kernels' templates.
template <class Fn>
void trellis_dispatch(int step_bits, Fn fn) {
  using std::integral_constant;
  switch (step_bits) {
    case 2: return fn(integral_constant<int, 2>{}, integral_constant<int, 1>{});
    case 3: return fn(integral_constant<int, 3>{}, integral_constant<int, 1>{});
    case 4: return fn(integral_constant<int, 4>{}, integral_constant<int, 1>{});
    default: return fn(integral_constant<int, 5>{}, integral_constant<int, 2>{});  // tcq2p5
  }
}

// Activation bytes of the fixed-point GEMVs (Fixed16Activation of kTrellis):
//   bytes [0, cols)          lo byte of xi[c] (int8), one per column (AVX-512 VBMI)
//   bytes [cols, 2 cols)     hi byte of xi[c] (int8)
//   bytes [2 cols, 4 cols)   xi[c] as int16, little-endian (AVX2)
//   group_sums [n_groups]    X_g (FP32; exact for groups up to 512 columns)
// Leaves a.fixed invalid (the kernels then run the FP32 path) when x has a NaN
// or an infinity.
void prepare_trellis_fixed16(const PackedMatrix& w, PackedActivation& a);
// The same preparation 16 columns at a time, equal to it byte for byte (the
// SIMD rows' prepare_fixed16: decode runs it once per linear on one thread).
void prepare_trellis_fixed16_avx2(const PackedMatrix& w, PackedActivation& a);
void prepare_trellis_fixed16_avx512(const PackedMatrix& w, PackedActivation& a);
// The int16 xi [cols] of a prepared activation (for SIMD loads).
inline const int16_t* trellis_fixed16_words(const PackedActivation& a, int64_t cols) {
  return reinterpret_cast<const int16_t*>(a.fixed.bytes.data() + 2 * cols);
}

// Bound on |fixed-point kernel - exact fixed-point formula| for row r: FP32
// rounding of the int32 -> FP32 conversions, the scale products, the lane and
// group sums, the final subtraction and the two scale products:
//   (cols / 64 + n_groups + 12) * 2^-24 * |tensor_scale| * xs *
//   ( sum_c |s_g| (value_c + 126) |xi_c| + 126 * sum_g |s_g X_g| )
double trellis_fixed16_rounding_bound(const PackedMatrix& w, const PackedActivation& a, int64_t r);

// The values (without scale) of one 64-weight sequence: out[64] in [-126, 126].
// Scalar, the same states as trellis_state (a sliding 32-bit window).
void trellis_sequence_values(const TrellisParams& p, const uint8_t* seq, int8_t* out);

// out [r1 - r0][cols] = W rows in FP32, bit-identical to packed_value (every ISA's
// prompt path: the decode is not the bottleneck there, sgemm is).
void trellis_dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out);

// The FP32 GEMV (portable; also the SIMD kernels' path for x that is not finite):
// 16 lanes of sum (value * scale) * x (value * scale is exact in FP32); the error
// bound is packed_gemv_bound's (lane depth cols / 16, plus the lane sum).
void trellis_gemv_fp32(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y);

// For the benchmark's comparison of activation widths only (not a table row): the
// AVX-512 VBMI GEMV with x as its hi byte alone, i.e. 8-bit x of step 256 xs (error
// up to 128 xs per element), one vpdpbusd per 64 weights instead of two. Call only
// where CPUID reports AVX512_VBMI and GFNI.
void trellis_gemv_avx512vbmi_hi_only(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1,
                                     float* y);

}  // namespace lowbit
