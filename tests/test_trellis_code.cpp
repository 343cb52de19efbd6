// The stored form of trellis-coded weights (formats/trellis_code.h): the
// table codebook, the circular state read, names and the reference decoder.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/half.h"
#include "formats/trellis_code.h"

namespace lowbit {
namespace {

// Phi^-1(p) by bisection on Phi(x) = erfc(-x / sqrt 2) / 2 (monotone): 200 halvings of
// [-10, 10] reach the spacing of doubles, far below the 0.037 by which every scaled
// quantile stays away from a rounding tie (scripts/trellis_table.py).
double normal_quantile(double p) {
  double lo = -10.0, hi = 10.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// The table is a permutation of the 64 scaled Gaussian quantiles of its definition,
// computed here independently of scripts/trellis_table.py, within [-126, 126].
TEST(TrellisCode, TableIsAPermutationOfTheGaussianQuantiles) {
  const double top = normal_quantile(63.5 / 64.0);
  std::vector<int> want, got;
  for (int i = 0; i < kTrellisTableSize; ++i) {
    want.push_back(static_cast<int>(std::lround(126.0 * normal_quantile((i + 0.5) / 64.0) / top)));
    got.push_back(kTrellisTable[i]);
    ASSERT_LE(std::abs(got.back()), kTrellisValueMax) << i;
  }
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);  // the quantiles ascend
  EXPECT_EQ(want.front(), -126);
  EXPECT_EQ(want.back(), 126);
  double sum2 = 0.0;
  for (int v : want) sum2 += v * v;
  EXPECT_NEAR(std::sqrt(sum2 / 64.0), 51.60, 0.005);  // the RMS of the format comment
}

TEST(TrellisCode, CodebookKnownAnswers) {
  // State 0: h0 = h1 = 0, entry 0.
  EXPECT_EQ(trellis_state_value(0, 0), -77);
  EXPECT_EQ(trellis_state_value(0, 1), -77);
  // State 0xFFF: h0 = (0xFFF ^ 0xFF ^ 0x3F ^ 0xF) & 63 = 0xF30 & 63 = 48 (34),
  // h1 = (0xFFF ^ 0xFF ^ 0xF) & 63 = 0xF0F & 63 = 15 (-31).
  EXPECT_EQ(trellis_hash0(0xFFF), 48u);
  EXPECT_EQ(trellis_hash1(0xFFF), 15u);
  EXPECT_EQ(trellis_state_value(0xFFF, 0), 34);
  EXPECT_EQ(trellis_state_value(0xFFF, 1), -31);
  // State 0x123: h0 = (0x123 ^ 0x12 ^ 0x4 ^ 0x1) & 63 = 0x134 & 63 = 52 (-126),
  // h1 = (0x123 ^ 0x12 ^ 0x1) & 63 = 0x130 & 63 = 48 (34).
  EXPECT_EQ(trellis_state_value(0x123, 0), -126);
  EXPECT_EQ(trellis_state_value(0x123, 1), 34);
}

// Over the 4096 states of L = 12: for fixed top bits 6..11, each h_j is a bijection
// of the low six bits (bits 4, 5 of h are s4, s5 XOR top bits; bits 0..3 are s0..s3
// XOR s4, s5 and top bits: triangular), so each table entry is used 64 times (the
// codebook's mean is the table's, 0, and its RMS 51.60). h0 ^ h1 = (s >> 6) & 63,
// the top bits, so the V = 2 index pairs (h0, h1) of the 4096 states are all distinct.
TEST(TrellisCode, HashesAreBalancedAndPairsDistinct) {
  std::vector<int> count0(64, 0), count1(64, 0);
  std::vector<bool> seen(64 * 64, false);
  for (uint32_t s = 0; s < 4096; ++s) {
    ++count0[trellis_hash0(s)];
    ++count1[trellis_hash1(s)];
    const uint32_t pair = trellis_hash0(s) * 64 + trellis_hash1(s);
    ASSERT_FALSE(seen[pair]) << s;
    seen[pair] = true;
  }
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(count0[i], 64) << i;
    EXPECT_EQ(count1[i], 64) << i;
  }
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
  // Two sequences, two scale groups of 64: value_j(s_t) = table[h_j(s_t)] times its group's scale.
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
    ASSERT_EQ(out[c], scale * kTrellisTable[c % 2 == 0 ? trellis_hash0(s) : trellis_hash1(s)]) << c;
  }
}

}  // namespace
}  // namespace lowbit
