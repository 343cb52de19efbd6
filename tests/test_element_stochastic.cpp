// Stochastic rounding: unbiased between neighbours. For a value x between
// representable neighbours lo < x < hi the result is hi with probability
// p = (x - lo) / (hi - lo), so the mean of N roundings has standard error
// (hi - lo) sqrt(p (1 - p) / N); the test asks |mean - x| <= 3 standard errors
// for 10^6 roundings with a seeded generator.
#include <random>

#include "test_element_util.h"

namespace lowbit {
namespace {

struct Case {
  const char* format;
  float x;
};

const Case kCases[] = {
    {"fp8_e4m3", 1.3f},    {"fp8_e4m3", -0.0123f}, {"fp8_e4m3", 300.7f},  {"fp8_e5m2", 0.00003f},
    {"fp8_e5m2", -1234.5f}, {"fp6_e2m3", 1.1f},    {"fp6_e3m2", -13.3f},  {"fp4_e2m1", 2.6f},
    {"fp4_e2m1", -0.3f},   {"fp4_e2m1", 5.1f},     {"e8m0", 3.0f},        {"e8m0", 0.01f},
    {"ue4m3", 17.3f},      {"ue5m3", 1000.3f},     {"bf16", 1.001f},      {"fp16", 0.1f},
    {"int4", 2.3f},        {"int4", -6.8f},        {"uint4", 7.25f},      {"int8", -100.1f},
    {"nf4", 0.3f},         {"nf4", -0.5f},         {"posit8_2", 3.3f},    {"posit8_2", 1000.5f},
    {"posit8_0", -0.77f},  {"posit4_1", 5.0f},     {"posit16_1", 1.2345f},
};

TEST(ElementStochastic, MeanOfAMillionRoundingsIsWithinThreeStandardErrors) {
  constexpr int kDraws = 1000000;
  for (const Case& c : kCases) {
    SCOPED_TRACE(::testing::Message() << c.format << " x=" << c.x);
    const ElementCodec& codec = *testing::element(c.format).codec;
    const uint32_t nearest = codec.encode(c.x);
    // The two neighbours: the RNE result and the one on the other side of x.
    std::mt19937 rng(20240503);
    double sum = 0.0;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < kDraws; ++i) {
      const float u = static_cast<float>(rng() >> 8) * 0x1p-24f;  // [0, 1)
      const double v = codec.decode(codec.encode_stochastic(c.x, u));
      sum += v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    ASSERT_LT(lo, c.x) << "never rounded down";
    ASSERT_GT(hi, c.x) << "never rounded up";
    ASSERT_TRUE(codec.decode(nearest) == lo || codec.decode(nearest) == hi);
    const double p = (c.x - lo) / (hi - lo);
    const double se = (hi - lo) * std::sqrt(p * (1 - p) / kDraws);
    EXPECT_LE(std::fabs(sum / kDraws - c.x), 3 * se) << "lo " << lo << " hi " << hi << " p " << p;
  }
}

TEST(ElementStochastic, ExactValuesAndOutOfRangeAreDeterministic) {
  for (const char* name : {"fp8_e4m3", "fp4_e2m1", "int4", "nf4", "posit8_2", "e8m0", "fp16"}) {
    SCOPED_TRACE(name);
    const ElementFormat& f = testing::element(name);
    for (uint32_t code = 0; code < std::min(num_codes(f), 4096u); ++code) {
      if (f.codec->is_reserved(code) || f.codec->is_nan(code)) continue;
      const float v = f.codec->decode(code);
      for (float u : {0.0f, 0.5f, 0.9999999f}) ASSERT_EQ(f.codec->encode_stochastic(v, u), code) << v;
    }
    for (float u : {0.0f, 0.9999999f}) {
      EXPECT_EQ(f.codec->encode_stochastic(3e38f, u), f.codec->encode(3e38f));
      EXPECT_EQ(f.codec->encode_stochastic(NAN, u), f.codec->encode(NAN));
    }
  }
}

}  // namespace
}  // namespace lowbit
