// `lowbit inspect` statistics (issue 5) on inputs with known answers: kurtosis,
// medians, top channels of a planted-outlier matrix, near-zero fractions, massive
// activations (Sun et al. 2024), and the model-wide summaries (outlier channels,
// recurring channels, mixed-precision suggestions).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "pipeline/inspect_stats.h"
#include "pipeline/inspect_summary.h"

namespace lowbit {
namespace {

// Gaussian [n, channels], channel j scaled by scale[j] (1 when absent).
std::vector<float> gaussian(int64_t n, int64_t channels, uint32_t seed, const std::map<int64_t, float>& scale = {}) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * channels));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < channels; ++j) {
      const auto s = scale.find(j);
      x[t * channels + j] = normal(rng) * (s == scale.end() ? 1.0f : s->second);
    }
  }
  return x;
}

TEST(InspectStats, KurtosisOfKnownSamples) {
  // 1..5: mean 3, μ₂ = 10/5 = 2, μ₄ = 34/5 = 6.8, β₂ = 6.8 / 4 = 1.7.
  const std::vector<float> ramp = {1, 2, 3, 4, 5};
  EXPECT_NEAR(pearson_kurtosis(ramp.data(), 5), 1.7, 1e-12);
  // ±1 (a two-point distribution): β₂ = 1, the smallest possible.
  const std::vector<float> pm = {-1, 1, -1, 1};
  EXPECT_NEAR(pearson_kurtosis(pm.data(), 4), 1.0, 1e-12);
  // One spike among n − 1 zeros: β₂ = (n² − 3n + 3) / (n − 1), 98 for n = 100.
  std::vector<float> spike(100, 0.0f);
  spike[37] = 5.0f;
  EXPECT_NEAR(pearson_kurtosis(spike.data(), 100), (100.0 * 100 - 3 * 100 + 3) / 99.0, 1e-9);
  // Constant and empty: 0 by definition.
  const std::vector<float> flat(10, 2.5f);
  EXPECT_EQ(pearson_kurtosis(flat.data(), 10), 0.0);
  EXPECT_EQ(pearson_kurtosis(nullptr, 0), 0.0);
  // Gaussian: 3 (standard error sqrt(24/n) ≈ 0.011 at n = 200 000).
  const std::vector<float> g = gaussian(200000, 1, 5);
  EXPECT_NEAR(pearson_kurtosis(g.data(), 200000), 3.0, 0.06);
}

TEST(InspectStats, LowerMedian) {
  EXPECT_EQ(lower_median({5, 1, 3}), 3.0);
  EXPECT_EQ(lower_median({4, 1, 3, 2}), 2.0);
  EXPECT_EQ(lower_median({7}), 7.0);
  EXPECT_EQ(lower_median({}), 0.0);
}

TEST(InspectStats, PlantedOutlierChannelsAreTheTopChannels) {
  const int64_t n = 512;
  const int64_t c = 96;
  const std::vector<float> x = gaussian(n, c, 11, {{17, 50.0f}, {3, 20.0f}, {70, 8.0f}});
  const MatrixStats s = matrix_stats(x.data(), n, c, 3, false);
  ASSERT_EQ(s.top.size(), 3u);
  EXPECT_EQ(s.top[0].channel, 17);
  EXPECT_EQ(s.top[1].channel, 3);
  EXPECT_EQ(s.top[2].channel, 70);
  EXPECT_EQ(s.absmax, s.top[0].value);
  EXPECT_EQ(s.channel_max[17], s.top[0].value);
  // max of 512 standard normals ≈ 3.0 (2.6-3.6); ×50 gives ~150, the median channel max ~3.
  EXPECT_GT(s.max_median_ratio, 35.0);
  EXPECT_LT(s.max_median_ratio, 70.0);
  EXPECT_GT(s.profile_kurtosis, 30.0);  // three spikes over a flat profile of 96
  EXPECT_GT(s.kurtosis, 20.0);          // a mixture with a 50x channel is heavy tailed

  const std::vector<float> plain = gaussian(n, c, 12);
  const MatrixStats p = matrix_stats(plain.data(), n, c, 3, false);
  EXPECT_LT(p.max_median_ratio, 1.6);
  EXPECT_NEAR(p.kurtosis, 3.0, 0.15);
  EXPECT_NEAR(p.rms, 1.0, 0.02);
}

TEST(InspectStats, TopChannelsBreakTiesByIndex) {
  const std::vector<ChannelValue> top = top_channels({1, 4, 2, 4, 0}, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].channel, 1);
  EXPECT_EQ(top[1].channel, 3);
  EXPECT_EQ(top[2].channel, 2);
  EXPECT_EQ(top_channels({1, 2}, 5).size(), 2u);
}

TEST(InspectStats, NearZeroFractionsCountExactly) {
  // absmax 1000: the relative threshold is 1; the absolute one 0.01.
  // 0.5 is near zero only relatively, 0.005 and 0 both ways, 2 and -3 neither.
  const std::vector<float> x = {1000.0f, 0.5f, -0.5f, 0.005f, 0.0f, 2.0f, -3.0f, 0.5f};  // [2, 4]
  const MatrixStats s = matrix_stats(x.data(), 2, 4, 2, true);
  EXPECT_DOUBLE_EQ(s.near_zero_rel, 5.0 / 8.0);
  EXPECT_DOUBLE_EQ(s.near_zero_abs, 2.0 / 8.0);
  EXPECT_DOUBLE_EQ(s.absmax, 1000.0);
  EXPECT_DOUBLE_EQ(s.median_abs, 0.5);  // sorted |x|: 0 .005 .5 .5 .5 2 3 1000 → element 3
  ASSERT_EQ(s.channel_max.size(), 4u);
  EXPECT_EQ(s.channel_max[0], 1000.0f);
  EXPECT_EQ(s.channel_max[2], 3.0f);
}

TEST(InspectStats, MassiveActivationsFollowSunEtAl) {
  const int64_t n = 64;
  const int64_t c = 32;
  std::vector<float> h = gaussian(n, c, 3);  // median |h| ≈ 0.674
  for (float& v : h) v *= 0.1f;              // ≈ 0.067: 1000 x median ≈ 67 < 100
  h[5 * c + 7] = 500.0f;
  h[0 * c + 2] = -300.0f;
  h[9 * c + 1] = 90.0f;  // below 100: not massive
  const MatrixStats s = matrix_stats(h.data(), n, c, 4, true);
  const std::vector<MassiveActivation> found = find_massive(h.data(), n, c, s.median_abs, 4);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].token, 5);
  EXPECT_EQ(found[0].channel, 7);
  EXPECT_EQ(found[0].value, 500.0f);
  EXPECT_EQ(found[0].layer, 4);
  EXPECT_NEAR(found[0].ratio, 500.0 / s.median_abs, 1e-9);
  EXPECT_EQ(found[1].token, 0);
  EXPECT_EQ(found[1].channel, 2);
  EXPECT_EQ(found[1].value, -300.0f);

  // The same 500 in a stream whose median |h| is ~1: 500 < 1000 x median, not massive.
  std::vector<float> loud = gaussian(n, c, 4);
  for (float& v : loud) v = v >= 0 ? 1.0f + v * 0.01f : -1.0f + v * 0.01f;
  loud[3] = 500.0f;
  const MatrixStats ls = matrix_stats(loud.data(), n, c, 4, true);
  EXPECT_NEAR(ls.median_abs, 1.0, 0.02);
  EXPECT_TRUE(find_massive(loud.data(), n, c, ls.median_abs, 0).empty());
}

// A two-layer inspection with chosen absmax values for the summary functions.
ModelInspection synthetic_inspection(const std::vector<float>& down_absmax) {
  ModelInspection m;
  m.n_layers = static_cast<int>(down_absmax.size());
  m.seq_len = 4;
  for (int i = 0; i < m.n_layers; ++i) {
    LayerInspection l;
    l.layer = i;
    for (size_t p = 0; p < kInputPoints.size(); ++p) {
      std::vector<float> ch(8, 1.0f);
      if (p == 3) ch[static_cast<size_t>(i % 8)] = down_absmax[static_cast<size_t>(i)];
      if (p == 0) ch[5] = 6.0f;  // attn_in channel 5 stands out in every layer
      const std::vector<float> x = ch;  // one token: channel max = the values
      l.inputs[p] = matrix_stats(x.data(), 1, 8, 2, false);
    }
    m.layers.push_back(std::move(l));
  }
  for (int i = 0; i <= m.n_layers; ++i) {
    std::vector<float> ch(8, 1.0f);
    m.residual.push_back(matrix_stats(ch.data(), 1, 8, 2, true));
  }
  return m;
}

TEST(InspectSummary, SpikingDownProjIsSuggestedWithARecipeRegex) {
  const ModelInspection m = synthetic_inspection({2, 3, 2, 80, 2, 50});
  const std::vector<PrecisionSuggestion> s = suggest_mixed_precision(m, 10.0);
  ASSERT_EQ(s.size(), 2u);  // median absmax of down_in = 2 (lower median of 2 2 2 3 50 80)
  EXPECT_EQ(s[0].layer, 3);
  EXPECT_EQ(s[1].layer, 5);
  EXPECT_EQ(s[0].point, 3);
  EXPECT_DOUBLE_EQ(s[0].median_absmax, 2.0);
  ASSERT_EQ(s[0].linears.size(), 1u);
  EXPECT_EQ(s[0].linears[0], "layers.3.down_proj");
  EXPECT_EQ(suggestion_regex(s), "^layers\\.(3|5)\\.(down_proj)$");
  EXPECT_EQ(suggestion_regex({}), "");

  const std::vector<OutlierChannel> top = top_outlier_channels(m, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].layer, 3);
  EXPECT_EQ(top[0].point, 3);
  EXPECT_EQ(top[0].channel, 3);
  EXPECT_DOUBLE_EQ(top[0].ratio, 80.0);
  EXPECT_EQ(top[1].layer, 5);

  const std::vector<RecurringChannel> rec = recurring_channels(m, 0, 1);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].channel, 5);
  EXPECT_EQ(rec[0].layers, 6);
  EXPECT_TRUE(recurring_channels(m, 3, 4).empty());  // down_in channels differ per layer
}

}  // namespace
}  // namespace lowbit
