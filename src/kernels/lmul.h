// L-Mul, the linear-complexity approximate multiplication of Luo & Sun, "Addition is
// All You Need for Energy-efficient Language Models" (arXiv 2410.00907, 2024), and
// the FP8 (E4M3) product it is compared with: the scalar references, bit for bit
// what the vector kernels (kernels/approx_gemm.h) compute.
//
// L-Mul. For x = (1 + x_m)·2^{x_e} and y = (1 + y_m)·2^{y_e} with m-bit mantissas,
//   L-Mul(x, y) = (1 + x_m + y_m + 2^{-l(m)}) · 2^{x_e + y_e},  sign = sign(x) xor sign(y),
//   l(m) = m (m ≤ 3), 3 (m = 4), 4 (m > 4),
// computed as the paper's PTX does: one integer addition of the magnitudes' bit
// patterns, |x|bits + |y|bits − bias + 2^{23−l(m)}, so a mantissa sum ≥ 1 carries
// into the exponent (the value is then (x_m + y_m + 2^{-l})·2^{x_e+y_e+1}).
//
// Operand format: FP32's 8-bit exponent with the mantissa rounded to m bits, to
// nearest even (lmul_round_operand); m = 23 is the paper's PTX on FP32 registers
// (offset 2^-4), m = 7 is BF16 operands, m = 3 the paper's "3-bit mantissa L-Mul"
// that it sets beside float8_e4m3 (every E4M3 value is exact in this format). The
// result has m mantissa bits too (l(m) ≤ m), so it is exact in FP32.
//
// Error, from the paper's expression (exact on the mantissas): with a = x_m, b = y_m
// and c = 2^{-l(m)}, the exact product is (1 + a + b + ab)·2^e and L-Mul puts c for ab.
// Without a carry the relative error is (c − ab)/((1 + a)(1 + b)); with one it is
// 2(a + b + c)/((1 + a)(1 + b)) − 1, which grows with a + b from where the first
// case ends. So it lies in [−(t² − c)/(1 + t)², c], t = (1 − c)/2: the top (c) at
// a = b = 0 (powers of two), the bottom at a = b = t, just before the carry
// (lmul_relative_error_bounds; l = 3: [−0.0321, 0.125], l = 4: [−0.0729, 0.0625];
// l ≤ 2: never below 0). tests/test_lmul.cpp checks it over all pairs of E4M3
// values (m = 3) and densely for m = 4, 7 and 23.
// Special values (our choice; the paper defines only normal operands):
//   * subnormal operands round to zero of their sign (the format has no subnormals);
//   * a zero operand (of a finite pair) gives a zero of the xor sign;
//   * a result whose biased exponent falls to 0 or below flushes to a zero of its sign,
//     one reaching 255 or above is an infinity of its sign;
//   * with an infinity or NaN operand the result is as IEEE multiplication on the
//     rounded operands: NaN if either is NaN or an infinity meets a zero, else an
//     infinity of the xor sign. Every NaN result is the quiet NaN 0x7FC00000.
//
// FP8 E4M3 (OCP "fn": bias 7, max 448, subnormals down to 2^-9, no infinities):
// finite operands round to nearest even, saturating at ±448; infinities and NaN
// pass through unrounded. Two E4M3 values multiply exactly in FP32 (4 + 4
// significant bits), so fp8 products are exact and only the sums round.
#pragma once

#include <cstdint>

namespace lowbit {

inline constexpr int kLmulMaxMantissa = 23;  // FP32's mantissa: L-Mul on unrounded FP32 operands

// l(m): the offset 2^{-l(m)} stands for the dropped mantissa product. m in [1, 23].
int lmul_offset_exponent(int mantissa_bits);

// x with its mantissa rounded to m bits (nearest even; a carry may reach infinity),
// subnormals to zero of their sign, infinities and NaN unchanged. m in [1, 23].
float lmul_round_operand(float x, int mantissa_bits);

// L-Mul of two operands already in the m-bit format (as lmul_round_operand returns),
// given as bit patterns; returns the result's bits.
uint32_t lmul_bits(uint32_t x, uint32_t y, int mantissa_bits);
// The same on floats that are rounded first: lmul_bits(round(x), round(y)).
float lmul(float x, float y, int mantissa_bits);

// The relative error range of L-Mul against the exact product for m-bit operands
// (the derivation above): lo ≤ (lmul(x, y) − xy)/xy ≤ hi for finite non-zero
// results.
struct LmulErrorBounds {
  double lo = 0.0;
  double hi = 0.0;
};
LmulErrorBounds lmul_relative_error_bounds(int mantissa_bits);

// x rounded to E4M3 (nearest even, saturating at ±448; infinities and NaN unchanged).
float round_to_e4m3(float x);

}  // namespace lowbit
