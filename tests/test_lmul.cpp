// L-Mul's scalar reference (kernels/lmul.h): the offset rule, hand-computed cases
// (carries into the exponent, signs, zeros, infinities, NaN, flushes), the error
// range over every pair of E4M3 operands and densely sampled wider ones, and the
// E4M3 rounding of the FP8 comparison.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "kernels/lmul.h"
#include "kernels/packed_matrix.h"

namespace lowbit {
namespace {

uint32_t bits(float x) { return std::bit_cast<uint32_t>(x); }

TEST(Lmul, OffsetExponentFollowsThePaper) {
  EXPECT_EQ(lmul_offset_exponent(1), 1);
  EXPECT_EQ(lmul_offset_exponent(2), 2);
  EXPECT_EQ(lmul_offset_exponent(3), 3);
  EXPECT_EQ(lmul_offset_exponent(4), 3);
  for (int m = 5; m <= 23; ++m) EXPECT_EQ(lmul_offset_exponent(m), 4) << m;
}

TEST(Lmul, OperandRoundingIsNearestEven) {
  EXPECT_EQ(lmul_round_operand(1.0625f, 3), 1.0f);   // tie, even (000) below
  EXPECT_EQ(lmul_round_operand(1.1875f, 3), 1.25f);  // tie, odd (001) below: up
  EXPECT_EQ(lmul_round_operand(1.9375f, 3), 2.0f);   // tie at the top of the binade: carry into the exponent
  EXPECT_EQ(lmul_round_operand(1.07f, 3), 1.125f);
  EXPECT_EQ(lmul_round_operand(-1.07f, 3), -1.125f);
  EXPECT_EQ(lmul_round_operand(1.0f + 0x1.0p-23f, 23), 1.0f + 0x1.0p-23f);  // m = 23: unchanged
  EXPECT_EQ(bits(lmul_round_operand(1e-40f, 7)), 0u);                     // subnormal: zero of its sign
  EXPECT_EQ(bits(lmul_round_operand(-1e-40f, 7)), 0x80000000u);
  EXPECT_EQ(lmul_round_operand(std::numeric_limits<float>::max(), 3), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(lmul_round_operand(std::numeric_limits<float>::quiet_NaN(), 3)));
}

// Worked by hand from (1 + x_m + y_m + 2^-l)·2^{x_e+y_e}, the carry as integer addition does it.
TEST(Lmul, HandComputedProducts) {
  // No carry: the offset stands for the mantissa product.
  EXPECT_EQ(lmul(1.0f, 1.0f, 3), 1.125f);   // l(3) = 3
  EXPECT_EQ(lmul(1.0f, 1.0f, 4), 1.125f);   // l(4) = 3
  EXPECT_EQ(lmul(1.0f, 1.0f, 2), 1.25f);    // l(2) = 2
  EXPECT_EQ(lmul(1.0f, 1.0f, 1), 1.5f);     // l(1) = 1
  EXPECT_EQ(lmul(1.0f, 1.0f, 7), 1.0625f);  // BF16 operands: l = 4
  EXPECT_EQ(lmul(3.0f, 0.5f, 3), 1.625f);   // (1 + .5 + 0 + .125)·2^{1−1}; exact 1.5
  EXPECT_EQ(lmul(1.25f, 1.25f, 3), 1.625f); // .25 + .25 + .125; exact 1.5625
  // The paper's PTX on FP32 registers: |x| + |y| − 0x3F780000.
  EXPECT_EQ(bits(lmul(1.0f, 1.0f, 23)), 0x3F800000u + 0x3F800000u - 0x3F780000u);
  EXPECT_EQ(bits(lmul(1.3f, -2.7f, 23)), ((bits(1.3f) + (bits(2.7f) & 0x7FFFFFFFu) - 0x3F780000u) | 0x80000000u));
  // Carry: x_m + y_m + 2^-l ≥ 1 runs into the exponent, (x_m + y_m + 2^-l)·2^{e+1}.
  EXPECT_EQ(lmul(1.5f, 1.5f, 3), 2.25f);      // .5 + .5 + .125 = 1.125 → 1.125·2
  EXPECT_EQ(lmul(1.75f, 1.25f, 3), 2.25f);    // .75 + .25 + .125 → 1.125·2; exact 2.1875
  EXPECT_EQ(lmul(1.875f, 1.875f, 3), 3.75f);  // .875·2 + .125 = 1.875 → 1.875·2; exact 3.515625
  EXPECT_EQ(lmul(1.5f, 1.375f, 3), 2.0f);     // .5 + .375 + .125 = 1 exactly: 1.0·2
  EXPECT_EQ(lmul(6.0f, 12.0f, 3), 72.0f);     // (1.5·4)(1.5·8): 1.125·2·32
  // Signs: xor.
  EXPECT_EQ(lmul(-1.5f, 1.5f, 3), -2.25f);
  EXPECT_EQ(lmul(1.5f, -1.5f, 3), -2.25f);
  EXPECT_EQ(lmul(-1.5f, -1.5f, 3), 2.25f);
  // The operands are rounded first: 1.07 → 1.125, 0.3 → 0.3125 = 1.25·2^-2.
  EXPECT_EQ(lmul(1.07f, 0.3f, 3), (1.0f + 0.125f + 0.25f + 0.125f) / 4.0f);
}

TEST(Lmul, ZerosInfinitiesAndNan) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(bits(lmul(0.0f, 5.0f, 3)), 0u);
  EXPECT_EQ(bits(lmul(-0.0f, 5.0f, 3)), 0x80000000u);
  EXPECT_EQ(bits(lmul(0.0f, -5.0f, 3)), 0x80000000u);
  EXPECT_EQ(bits(lmul(-0.0f, -0.0f, 3)), 0u);
  EXPECT_EQ(bits(lmul(0.0f, 0x1.0p100f, 3)), 0u);  // a zero is not the exponent field of the sum
  EXPECT_EQ(bits(lmul(1e-40f, 3.0f, 3)), 0u);      // subnormal operand: zero
  EXPECT_EQ(lmul(inf, 2.0f, 3), inf);
  EXPECT_EQ(lmul(inf, -2.0f, 3), -inf);
  EXPECT_EQ(lmul(-inf, -inf, 3), inf);
  EXPECT_EQ(bits(lmul(inf, 0.0f, 3)), 0x7FC00000u);
  EXPECT_EQ(bits(lmul(-0.0f, inf, 3)), 0x7FC00000u);
  EXPECT_EQ(bits(lmul(nan, 1.0f, 3)), 0x7FC00000u);
  EXPECT_EQ(bits(lmul(-2.0f, -nan, 3)), 0x7FC00000u);
  EXPECT_EQ(bits(lmul(nan, inf, 3)), 0x7FC00000u);
}

TEST(Lmul, ExponentOverflowAndUnderflow) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(lmul(0x1.0p100f, 0x1.0p100f, 3), inf);
  EXPECT_EQ(lmul(-0x1.0p100f, 0x1.0p100f, 3), -inf);
  EXPECT_EQ(lmul(0x1.0p63f, 0x1.0p64f, 3), 0x1.2p127f);                // the largest binade stays finite
  EXPECT_EQ(lmul(0x1.8p63f, 0x1.8p64f, 3), inf);                       // its carry reaches exponent 255
  EXPECT_EQ(lmul(0x1.ep63f, 0x1.ep63f, 3), 0x1.ep127f);                // carry, still finite
  EXPECT_EQ(bits(lmul(0x1.0p-100f, 0x1.0p-100f, 3)), 0u);
  EXPECT_EQ(bits(lmul(-0x1.0p-100f, 0x1.0p-100f, 3)), 0x80000000u);
  EXPECT_EQ(lmul(0x1.0p-63f, 0x1.0p-63f, 3), 0x1.2p-126f);  // the smallest normal binade
  EXPECT_EQ(bits(lmul(0x1.0p-64f, 0x1.0p-63f, 3)), 0u);     // biased exponent 0: flushed, no subnormal
  EXPECT_EQ(lmul(0x1.8p-64f, 0x1.8p-63f, 3), 0x1.2p-126f);  // the carry lifts it back to the normal range
}

// All pairs of finite non-zero E4M3 values (m = 3): the relative error lies in the
// derived range, reaches its top exactly (powers of two) and comes near its bottom.
TEST(Lmul, ErrorRangeOverEveryPairOfE4m3Values) {
  const LmulErrorBounds b = lmul_relative_error_bounds(3);
  EXPECT_EQ(b.hi, 0.125);
  EXPECT_NEAR(b.lo, -0.0321, 1e-4);
  double lo = 1.0, hi = -1.0, sum = 0.0;
  int64_t n = 0;
  for (int cx = 0; cx < 256; ++cx) {
    for (int cy = 0; cy < 256; ++cy) {
      if ((cx & 0x7F) == 0x7F || (cy & 0x7F) == 0x7F || (cx & 0x7F) == 0 || (cy & 0x7F) == 0) continue;  // NaN, 0
      const float x = e4m3_value(static_cast<uint8_t>(cx)), y = e4m3_value(static_cast<uint8_t>(cy));
      ASSERT_EQ(lmul_round_operand(x, 3), x) << cx;  // E4M3 ⊂ the 3-bit-mantissa format
      const double exact = static_cast<double>(x) * y;
      const double err = (lmul(x, y, 3) - exact) / exact;
      ASSERT_GE(err, b.lo - 1e-12) << x << " * " << y;
      ASSERT_LE(err, b.hi + 1e-12) << x << " * " << y;
      lo = std::min(lo, err);
      hi = std::max(hi, err);
      sum += std::fabs(err);
      ++n;
    }
  }
  EXPECT_EQ(n, 252 * 252);
  EXPECT_EQ(hi, 0.125);
  EXPECT_LE(lo, 0.9 * b.lo);  // -0.0303 at mantissas .375 and .5
  const double mean = sum / static_cast<double>(n);
  EXPECT_GT(mean, 0.050);  // measured 0.0533
  EXPECT_LT(mean, 0.056);
}

// Wider operands, sampled densely: m = 4 (l = 3), 7 (BF16, l = 4) and 23 (FP32, l = 4).
TEST(Lmul, ErrorRangeOverSampledWiderOperands) {
  for (int m : {4, 5, 7, 10, 23}) {
    const LmulErrorBounds b = lmul_relative_error_bounds(m);
    std::mt19937 rng(static_cast<uint32_t>(m));
    std::uniform_real_distribution<float> mant(1.0f, 2.0f);
    std::uniform_int_distribution<int> expo(-30, 30);
    double lo = 1.0, hi = -1.0;
    for (int i = 0; i < 400000; ++i) {
      const float x = lmul_round_operand(std::ldexp(mant(rng), expo(rng)) * (i % 3 == 0 ? -1.0f : 1.0f), m);
      const float y = lmul_round_operand(std::ldexp(mant(rng), expo(rng)), m);
      const double exact = static_cast<double>(x) * y;
      const double err = (lmul(x, y, m) - exact) / exact;
      ASSERT_GE(err, b.lo - 1e-12) << "m=" << m << ": " << x << " * " << y;
      ASSERT_LE(err, b.hi + 1e-12) << "m=" << m << ": " << x << " * " << y;
      lo = std::min(lo, err);
      hi = std::max(hi, err);
    }
    EXPECT_GT(hi, 0.95 * b.hi) << m;
    EXPECT_LT(lo, 0.9 * b.lo) << m;
  }
}

TEST(E4m3Rounding, CodesAreFixedPointsAndTiesGoToEven) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;  // NaN codes
    const float v = e4m3_value(static_cast<uint8_t>(c));
    EXPECT_EQ(bits(round_to_e4m3(v)), bits(v)) << c;
  }
  EXPECT_EQ(round_to_e4m3(1000.0f), 448.0f);  // saturates
  EXPECT_EQ(round_to_e4m3(-464.0f), -448.0f);
  EXPECT_EQ(round_to_e4m3(0x1.0p-10f), 0.0f);          // half the smallest subnormal: even (0)
  EXPECT_EQ(round_to_e4m3(0x1.8p-9f), 0x1.0p-8f);      // 1.5 quanta: even (2)
  EXPECT_EQ(round_to_e4m3(0x1.1p0f), 1.0f);            // 1.0625: tie, even below
  EXPECT_EQ(round_to_e4m3(0x1.3p0f), 1.25f);           // 1.1875: tie, odd below
  EXPECT_EQ(round_to_e4m3(0x1.fp-7f), 0x1.0p-6f);      // the top subnormal rounds into the normals
  EXPECT_EQ(bits(round_to_e4m3(-0x1.0p-12f)), 0x80000000u);
  EXPECT_TRUE(std::isnan(round_to_e4m3(std::numeric_limits<float>::quiet_NaN())));
}

}  // namespace
}  // namespace lowbit
