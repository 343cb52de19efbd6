// The stored form of trellis-coded weights (formats/trellis_code.h): the
// computed codebook, the circular state read, names and the reference decoder.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/half.h"
#include "formats/trellis_code.h"

namespace lowbit {
namespace {

TEST(TrellisCode, CodebookKnownAnswers) {
  // u = 0: h = b = 0x0491398A, masked 0x0411363A: bytes 58 + 54 + 17 + 4 = 133, minus 126.
  EXPECT_EQ(trellis_code_value(0), 7);
  // u = 1: h = a + b = 110664011 = 0x0698994B, masked 0x0618190B: 11 + 25 + 24 + 6 = 66, minus 126.
  EXPECT_EQ(trellis_code_value(1), -60);
  // Every entry lies in [-126, 126].
  for (uint32_t u = 0; u < (1u << 16); ++u) {
    const int v = trellis_code_value(u);
    ASSERT_GE(v, -kTrellisValueMax) << u;
    ASSERT_LE(v, kTrellisValueMax) << u;
  }
}

TEST(TrellisCode, CodebookIsNearGaussianWithTheIrwinHallMoments) {
  // The sum of four uniform 6-bit numbers has mean 126 and variance 4 (64^2 - 1) / 12 = 1365.
  // Over the 4096 states of L = 12 the sample mean has standard error sqrt(1365 / 4096) = 0.58
  // and the sample variance ~ sqrt(2 / 4096) * 1365 * (1 + kurtosis term) ~ 35: bands of 5 sigma.
  double sum = 0.0, sum2 = 0.0;
  const int n = 4096;
  for (int u = 0; u < n; ++u) {
    const double v = trellis_code_value(static_cast<uint32_t>(u));
    sum += v;
    sum2 += v * v;
  }
  const double mean = sum / n;
  const double var = sum2 / n - mean * mean;
  EXPECT_LT(std::fabs(mean), 5 * 0.58);
  EXPECT_NEAR(var, 1365.0, 5 * 35.0);
}

TEST(TrellisCode, StateReadsLBitsCircularly) {
  TrellisParams p = parse_trellis_format("tcq2_g64").value();
  ASSERT_EQ(p.seq_bytes(), 16);
  std::vector<uint8_t> seq(16, 0);
  seq[0] = 0xA5;  // bits 0..7: 1 0 1 0 0 1 0 1
  seq[1] = 0x0F;  // bits 8..11 set
  EXPECT_EQ(trellis_state(p, seq.data(), 0), 0xFA5u);
  EXPECT_EQ(trellis_state(p, seq.data(), 1), 0x3E9u);  // bits 2..13: 0xFA5 >> 2 | 0 << 10
  // The last step (t = 63) reads bits 126, 127 and wraps to bits 0..9 (0xA5, then bits 8 and 9 of 0x0F).
  seq[15] = 0xC0;                                      // bits 126, 127
  EXPECT_EQ(trellis_state(p, seq.data(), 63), 0x3u | (0x3A5u << 2));
}

TEST(TrellisCode, ConsecutiveStatesOverlapInLMinusKBits) {
  std::mt19937 rng(7);
  for (const char* name : {"tcq2_g64", "tcq2p5_g128", "tcq3_g64", "tcq4_g192"}) {
    const TrellisParams p = parse_trellis_format(name).value();
    std::vector<uint8_t> seq(static_cast<size_t>(p.seq_bytes()));
    for (auto& b : seq) b = static_cast<uint8_t>(rng());
    const uint32_t keep = (1u << (p.state_bits - p.step_bits)) - 1u;
    for (int t = 0; t + 1 < p.steps(); ++t) {
      const uint32_t s0 = trellis_state(p, seq.data(), t);
      const uint32_t s1 = trellis_state(p, seq.data(), t + 1);
      ASSERT_EQ(s1 & keep, s0 >> p.step_bits) << name << " t " << t;
    }
    // Tail-biting: the step after the last reads what step 0 reads.
    const uint32_t last = trellis_state(p, seq.data(), p.steps() - 1);
    ASSERT_EQ(trellis_state(p, seq.data(), 0) & keep, last >> p.step_bits) << name;
  }
}

TEST(TrellisCode, NamesParseAndBadNamesAreRefused) {
  const TrellisParams p = parse_trellis_format("tcq2p5_g256").value();
  EXPECT_EQ(p.step_bits, 5);
  EXPECT_EQ(p.values_per_step, 2);
  EXPECT_EQ(p.group, 256);
  EXPECT_EQ(p.seq_bytes(), 20);
  EXPECT_EQ(trellis_format_name(p), "tcq2p5_g256");
  EXPECT_DOUBLE_EQ(p.bits_per_weight(512), 2.5 + 16.0 * 2 / 512);
  EXPECT_EQ(parse_trellis_format("tcq3_g64").value().seq_bytes(), 24);
  EXPECT_EQ(parse_trellis_format("tcq4_g64").value().seq_bytes(), 32);
  for (const char* bad : {"tcq5_g64", "tcq2", "tcq2_g", "tcq2_g32", "tcq2_g100", "tcq2_gx", "tcq2_g64x",
                          "tcq2_g-64", "tcq2_g131072", "q2_g64"}) {
    const auto r = parse_trellis_format(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(trellis_check_shape(p, 4, 96).ok());
  EXPECT_TRUE(trellis_check_shape(p, 4, 128).ok());
}

TEST(TrellisCode, ReferenceDecodeFollowsTheDefinition) {
  // Two sequences, two scale groups of 64: value(V s_t + j) times its group's scale.
  const TrellisParams p = parse_trellis_format("tcq2p5_g64").value();
  const int64_t cols = 128;
  std::mt19937 rng(11);
  std::vector<uint8_t> codes(static_cast<size_t>(trellis_row_bytes(p, cols)));
  for (auto& b : codes) b = static_cast<uint8_t>(rng());
  const std::vector<uint16_t> scales = {float_to_fp16(0.5f), float_to_fp16(-0.25f)};
  std::vector<float> out(cols);
  trellis_decode_row(p, codes.data(), scales.data(), cols, out.data());
  for (int64_t c = 0; c < cols; ++c) {
    const uint8_t* seq = codes.data() + (c / 64) * p.seq_bytes();
    const int t = static_cast<int>(c % 64) / 2;
    const uint32_t s = trellis_state(p, seq, t);
    const float scale = c < 64 ? 0.5f : -0.25f;
    ASSERT_EQ(out[c], scale * trellis_code_value(2 * s + static_cast<uint32_t>(c % 2))) << c;
  }
}

}  // namespace
}  // namespace lowbit
