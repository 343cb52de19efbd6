// RotateKV's outlier-aware key channel order (-reorder, kv_channel_order.h) and
// KVQuant's Q-Norm of NUQ codebooks (-qnorm, nuq_fit.h): the dealing order on a
// case worked by hand, planted outlier channels spread over the Hadamard blocks,
// q·k through an FP32-storage reordered cache within the rounding bound of the
// two Hadamard transforms, Q-Norm's moments on constructed distributions, and the
// configuration file's round trip and refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <tuple>

#include "kernels/hadamard.h"
#include "kvcache/kv_channel_order.h"
#include "kvcache/kv_config_file.h"
#include "kvcache/kv_spec.h"
#include "kvcache/nuq_fit.h"
#include "kvcache/quantized_kv_cache.h"
#include "test_kv_util.h"

namespace lowbit {
namespace {

KvSpec parse_ok(const std::string& text) { return testing::parse_kv_spec_ok(text); }

TEST(KvReorder, SpecPartsNeedTheirBase) {
  const KvSpec r = parse_ok("k2v2-rot-reorder");
  EXPECT_TRUE(r.reorder_keys && r.rotate);
  EXPECT_TRUE(r.needs_fitting());
  EXPECT_TRUE(parse_ok("k2v2-kivi-r128-prerope-rotg3-reorder").reorder_keys);
  const KvSpec q = parse_ok("k3v3-nuq-qnorm");
  EXPECT_TRUE(q.qnorm && q.uses_codebooks());
  EXPECT_FALSE(parse_ok("k3v3-nuq").qnorm);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"k2v2-reorder", "add -rot or -rotgG"},
      {"k3v3-qnorm", "add -nuq"},
      {"k8v8-fp8-qnorm", "add -nuq"},
      {"k2v2-rot-reorder-reorder", "'reorder' repeats"},
      {"k3v3-nuq-qnorm-qnorm", "'qnorm' repeats"},
  };
  for (const auto& [text, needle] : cases) {
    auto s = parse_kv_spec(text);
    ASSERT_FALSE(s.ok()) << text << " was accepted";
    EXPECT_NE(s.status().message().find(needle), std::string::npos) << text << ": " << s.status().message();
  }
  // Without its order a -reorder cache is refused, naming where the order comes from.
  const Status missing = check_kv_spec(r, KvCacheShape{2, 16, 3, 12});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("--kv-calib"), std::string::npos) << missing.message();
}

// 8 channels in 2 blocks of 4, two planted outliers (10 and 9) in block 0. Ranked
// 0 (10), 1 (9), then 2..7 (1 each, ties by index); dealt zigzag 0, 1 | 1, 0 | 0, 1
// | 1, 0: block 0 gets 0, 3, 4, 7 and block 1 gets 1, 2, 5, 6. Per-block max
// magnitude goes from (10, 1) to (10, 9), sums from (21, 4) to (13, 12).
TEST(KvReorder, ZigzagDealKnownAnswer) {
  const std::vector<double> m = {10, 9, 1, 1, 1, 1, 1, 1};
  auto order = outlier_aware_order(m, 4);
  ASSERT_TRUE(order.ok()) << order.status().message();
  EXPECT_EQ(*order, (std::vector<int32_t>{0, 3, 4, 7, 1, 2, 5, 6}));
  double max_block[2] = {0, 0}, sum_block[2] = {0, 0};
  for (int j = 0; j < 8; ++j) {
    max_block[j / 4] = std::max(max_block[j / 4], m[(*order)[j]]);
    sum_block[j / 4] += m[(*order)[j]];
  }
  EXPECT_EQ(max_block[0], 10);
  EXPECT_EQ(max_block[1], 9);
  EXPECT_EQ(sum_block[0], 13);
  EXPECT_EQ(sum_block[1], 12);
  // Three blocks of 2 for magnitudes 6..1 in reverse index order: ranks 5,4,3 | 2,1,0
  // dealt 0,1,2 | 2,1,0: blocks {5, 0}, {4, 1}, {3, 2}, each summing to 7.
  auto three = outlier_aware_order({1, 2, 3, 4, 5, 6}, 2);
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(*three, (std::vector<int32_t>{5, 0, 4, 1, 3, 2}));
  // One block: the channels sorted by magnitude.
  auto one = outlier_aware_order({1, 3, 2}, 3);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, (std::vector<int32_t>{1, 2, 0}));
  EXPECT_FALSE(outlier_aware_order({1, 2, 3}, 2).ok());
  EXPECT_FALSE(outlier_aware_order({1, NAN}, 1).ok());
  EXPECT_FALSE(outlier_aware_order({}, 1).ok());
  // gather then scatter is the identity, exactly.
  const std::vector<float> x = {0.5f, -1, 2, 3, -4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  std::vector<float> y(16), back(16);
  gather_channels(x.data(), 2, *order, y.data());
  EXPECT_EQ(y[1], x[3]);
  EXPECT_EQ(y[12], x[8 + 1]);  // row 1, entry 4: channel order[4] = 1
  scatter_channels(y.data(), 2, *order, back.data());
  EXPECT_EQ(back, x);
}

// Keys of 3 KV heads of 12 (-rot: three Hadamard blocks of 12) with two planted
// outlier channels in head 0 (channel 2 ≈ 60, channel 7 ≈ -50) and N(0, 1)
// elsewhere.
std::vector<float> planted_keys(int tokens, uint32_t seed) {
  std::vector<float> k(static_cast<size_t>(tokens) * 36);
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (int t = 0; t < tokens; ++t) {
    for (int j = 0; j < 36; ++j) k[t * 36 + j] = d(rng);
    k[t * 36 + 2] += 60.0f;
    k[t * 36 + 7] -= 50.0f;
  }
  return k;
}

std::vector<double> mean_abs(const std::vector<float>& k, int width) {
  std::vector<double> m(width, 0.0);
  const size_t rows = k.size() / width;
  for (size_t i = 0; i < k.size(); ++i) m[i % width] += std::fabs(k[i]) / static_cast<double>(rows);
  return m;
}

KvSpec spec_with_order(const std::string& text, const std::vector<int32_t>& order) {
  KvSpec s = parse_ok(text);
  s.key_order.layers = {order};
  return s;
}

// The cache stores the keys permuted, then rotated: the Hadamard transform keeps
// each block's energy Σ x², so the stored blocks' energies are those of the
// channels dealt to them. Without reordering block 0 holds both outliers
// (≈ 60² + 50²); with it each of blocks 0 and 1 holds one. With 4-bit codes per
// block of 12 the read-back keys' squared error falls (below).
TEST(KvReorder, PlantedOutliersAreSpreadOverTheBlocks) {
  const int T = 64;
  const std::vector<float> k = planted_keys(T, 3);
  auto order = outlier_aware_order(mean_abs(k, 36), 12);
  ASSERT_TRUE(order.ok());
  EXPECT_EQ((*order)[0], 2);   // the largest leads block 0
  EXPECT_EQ((*order)[12], 7);  // the second leads block 1
  const KvCacheShape shape{1, T, 3, 12};
  std::vector<float> v(k.size(), 0.5f);
  auto energies = [&](const KvSpec& spec) {
    auto cache = QuantizedKvCache::create(spec, shape);
    EXPECT_TRUE(cache.ok()) << cache.status().message();
    EXPECT_TRUE((*cache)->write(0, 0, T, k.data(), v.data()).ok());
    std::vector<float> stored(k.size());
    (*cache)->read_stored(0, true, T, stored.data());
    std::vector<double> e(3, 0.0);  // mean over tokens of each block's Σ y²
    for (size_t i = 0; i < stored.size(); ++i) e[(i % 36) / 12] += static_cast<double>(stored[i]) * stored[i] / T;
    return e;
  };
  // The same energies from the keys directly, in double, for a channel order.
  auto expected = [&](const std::vector<int32_t>& o) {
    std::vector<double> e(3, 0.0);
    for (int t = 0; t < T; ++t) {
      for (int j = 0; j < 36; ++j) e[j / 12] += static_cast<double>(k[t * 36 + o[j]]) * k[t * 36 + o[j]] / T;
    }
    return e;
  };
  std::vector<int32_t> identity(36);
  for (int j = 0; j < 36; ++j) identity[j] = j;
  const std::vector<double> plain = energies(parse_ok("k32v32-rot"));
  const std::vector<double> spread = energies(spec_with_order("k32v32-rot-reorder", *order));
  const std::vector<double> want_plain = expected(identity), want_spread = expected(*order);
  for (int b = 0; b < 3; ++b) {
    // Two float rounding passes (the transform, the sum) on values up to ~6000.
    EXPECT_NEAR(plain[b], want_plain[b], 1e-4 * want_plain[b]) << b;
    EXPECT_NEAR(spread[b], want_spread[b], 1e-4 * want_spread[b]) << b;
  }
  EXPECT_GT(plain[0], 6000.0);  // 60² + 50² + 10
  EXPECT_LT(plain[1], 20.0);
  EXPECT_NEAR(spread[0], 3611.0, 60.0);  // 60² + 11
  EXPECT_NEAR(spread[1], 2511.0, 60.0);  // 50² + 11
  EXPECT_LT(spread[2], 20.0);

  auto read_error = [&](const KvSpec& spec) {
    auto cache = QuantizedKvCache::create(spec, shape);
    EXPECT_TRUE(cache.ok()) << cache.status().message();
    EXPECT_TRUE((*cache)->write(0, 0, T, k.data(), v.data()).ok());
    std::vector<float> kb(k.size()), vb(v.size());
    (*cache)->read(0, T, kb.data(), vb.data());
    // Per-head -rot keeps the keys rotated on reading (the block rotates the queries).
    if ((*cache)->layout().keys_rotated) hadamard_rows_transpose(kb.data(), T * 3, 12);
    double se = 0.0;
    for (size_t i = 0; i < k.size(); ++i) se += (static_cast<double>(kb[i]) - k[i]) * (kb[i] - k[i]);
    return se;
  };
  const double se_plain = read_error(parse_ok("k4v4-rot"));
  const double se_spread = read_error(spec_with_order("k4v4-rot-reorder", *order));
  // Plain: block 0 codes (60·h_2 − 50·h_7)/√12 + noise, four clusters over a range
  // of ~2·110/√12 in 15 steps. Reordered: each outlier leads its block (slot 0), and
  // row 0 of the Hadamard matrix is all ones, so it becomes the same ±60/√12 (±50/√12)
  // on all 12 elements: a shift the group's zero point absorbs, leaving only the noise
  // to code. Measured 8.08 against 915.6 (ratio 0.0088); pinned in [0.002, 0.05].
  EXPECT_LT(se_spread, 0.05 * se_plain) << se_spread << " vs " << se_plain;
  EXPECT_GT(se_spread, 0.002 * se_plain) << se_spread << " vs " << se_plain;
}

// q·k read back through an FP32-storage reordered cache equals q·k up to the two
// Hadamard transforms' rounding (the permutation is exact). kernels/hadamard.h
// computes an element of x·H/√n, n = 2^k·m, by k butterfly stages and an m-term
// product, then a scale: its error is ≤ r·u·‖x‖ with r = k + m + 1 and u = 2⁻²⁴
// (the bound test_kv_model.cpp's rotation_rounding_bound uses). Writing rotates,
// reading un-rotates (an orthogonal map, so it carries the write error's norm
// over): ‖k_read − k‖ ≤ 2·√n·r·u·‖k‖, and |q·k_read − q·k| ≤ 2·√n·r·u·‖q‖·‖k‖
// (the dots in double). Un-permuting with the wrong inverse (gather again) is
// off by O(‖q‖·‖k‖).
TEST(KvReorder, QueryKeyDotsUnchangedWithinHadamardRounding) {
  const int T = 48;
  const std::vector<float> k = planted_keys(T, 9);
  auto order = outlier_aware_order(mean_abs(k, 36), 12);
  ASSERT_TRUE(order.ok());
  auto order36 = outlier_aware_order(mean_abs(k, 36), 36);
  ASSERT_TRUE(order36.ok());
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> q(36);
  for (float& x : q) x = d(rng);
  std::vector<float> v(k.size(), 0.0f);
  for (const auto& [text, o, n] : {std::tuple{"k32v32-rot-reorder", *order, 12},
                                   std::tuple{"k32v32-rotg3-reorder", *order36, 36},
                                   std::tuple{"k32v32-rot-prerope-reorder", *order, 12}}) {
    auto cache = QuantizedKvCache::create(spec_with_order(text, o), KvCacheShape{1, T, 3, 12});
    ASSERT_TRUE(cache.ok()) << cache.status().message();
    EXPECT_FALSE((*cache)->layout().keys_rotated) << text << ": keys come back in their own basis";
    ASSERT_TRUE((*cache)->write(0, 0, T, k.data(), v.data()).ok());
    std::vector<float> kb(k.size()), vb(v.size());
    (*cache)->read(0, T, kb.data(), vb.data());
    const auto h = hadamard_order(n);
    ASSERT_TRUE(h.has_value());
    const double r = std::log2(static_cast<double>(h->pow2)) + h->base + 1;
    const double u = 0x1.0p-24;
    double worst = 0.0, q_norm = 0.0;
    for (float x : q) q_norm += static_cast<double>(x) * x;
    q_norm = std::sqrt(q_norm);
    for (int t = 0; t < T; ++t) {
      double exact = 0, read = 0, k_norm = 0, wrong = 0;
      std::vector<float> regathered(36);
      gather_channels(kb.data() + t * 36, 1, o, regathered.data());
      for (int j = 0; j < 36; ++j) {
        exact += static_cast<double>(q[j]) * k[t * 36 + j];
        read += static_cast<double>(q[j]) * kb[t * 36 + j];
        wrong += static_cast<double>(q[j]) * regathered[j];
        k_norm += static_cast<double>(k[t * 36 + j]) * k[t * 36 + j];
      }
      k_norm = std::sqrt(k_norm);
      const double bound = 2.0 * std::sqrt(static_cast<double>(n)) * r * u * q_norm * k_norm;
      EXPECT_LE(std::fabs(read - exact), bound) << text << " token " << t;
      worst = std::max(worst, std::fabs(read - exact) / bound);
      EXPECT_GT(std::fabs(wrong - exact), 100 * bound) << text << " token " << t;
    }
    EXPECT_GT(worst, 0.0) << text << ": the transforms round (the test is not vacuous)";
  }
}

// Four separated clusters, 4 levels with the ends pinned to ±1 (as the KV fit does):
// the coded values sit at -1, ≈-0.3, ≈0.35, 1 and have a larger spread and another
// mean than the data. The samples are ≥ 0.2 from every cell boundary, and one
// affine step moves a boundary by less than that, so Q-Norm keeps every sample in
// its cell and its one step is exact but for rounding the levels to float: each
// level moves by ≤ u·max|c| (u = 2⁻²⁴), which moves the coded mean and standard
// deviation by at most as much; the sums in double add ~N·2⁻⁵³·1 for each side
// (N = 4000).
TEST(KvQNorm, ClusteredDataMatchesMeanAndStdExactly) {
  std::vector<float> y;
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> jitter(-0.05f, 0.05f);
  const float centres[4] = {-0.9f, -0.3f, 0.35f, 0.95f};
  const int counts[4] = {500, 1500, 1200, 800};
  for (int c = 0; c < 4; ++c) {
    for (int i = 0; i < counts[c]; ++i) y.push_back(std::clamp(centres[c] + jitter(rng), -1.0f, 1.0f));
  }
  auto fitted = fit_lloyd_codebook(y, {}, 4, -1, 1);
  ASSERT_TRUE(fitted.ok());
  const Moments data = sample_moments(y, {});
  const Moments before = coded_moments(y, {}, *fitted);
  EXPECT_GT(std::fabs(before.std - data.std), 0.01) << "pinned ends widen the coded spread";
  auto normed = normalize_codebook_moments(y, {}, *fitted);
  ASSERT_TRUE(normed.ok()) << normed.status().message();
  ASSERT_TRUE(std::is_sorted(normed->begin(), normed->end()));
  const Moments after = coded_moments(y, {}, *normed);
  double max_level = 0.0;
  for (float c : *normed) max_level = std::max(max_level, std::fabs(static_cast<double>(c)));
  const double tol = 0x1.0p-24 * max_level + 2 * 4000 * 0x1.0p-53;
  EXPECT_NEAR(after.mean, data.mean, tol);
  EXPECT_NEAR(after.std, data.std, tol);
  // Same cells: every sample's code index is unchanged.
  for (float s : y) {
    auto index = [&](const std::vector<float>& l) {
      size_t best = 0;
      for (size_t j = 1; j < l.size(); ++j) {
        if (std::fabs(s - l[j]) < std::fabs(s - l[best])) best = j;
      }
      return best;
    };
    ASSERT_EQ(index(*fitted), index(*normed)) << s;
  }
}

// Continuous data (heavy-tailed, as the Lloyd test's): reassignment moves some
// samples, so Q-Norm iterates; it ends within its tolerance (1e-6 σ) of the data's
// moments, from a std shrunk by Lloyd's fit (unpinned: the mean already matches).
TEST(KvQNorm, ContinuousDataConvergesAndConstantDataIsSafe) {
  std::vector<float> g;
  for (int i = 1; i < 4000; ++i) g.push_back(std::tanh(0.5f * std::tan(3.14159265f * (i / 4000.0f - 0.5f))));
  LloydOptions free_ends;
  free_ends.pin_ends = false;
  for (int bits : {2, 3}) {
    auto fitted = fit_lloyd_codebook(g, {}, 1 << bits, -1, 1, free_ends);
    ASSERT_TRUE(fitted.ok());
    const Moments data = sample_moments(g, {});
    const Moments before = coded_moments(g, {}, *fitted);
    EXPECT_LT(before.std, data.std - 1e-3) << bits << ": Var q(y) = Var y − MSE";
    auto normed = normalize_codebook_moments(g, {}, *fitted);
    ASSERT_TRUE(normed.ok());
    const Moments after = coded_moments(g, {}, *normed);
    EXPECT_NEAR(after.mean, data.mean, 1e-6 * data.std) << bits;
    EXPECT_NEAR(after.std, data.std, 1e-6 * data.std) << bits;
    EXPECT_TRUE(check_codebook_levels(*normed, "normed").ok());
  }
  // Constant data: a shift puts the nearest level on it; no scale (σ = 0).
  auto c = normalize_codebook_moments(std::vector<float>(10, 0.25f), {}, {-1.0f, 0.0f, 0.5f, 1.0f});
  ASSERT_TRUE(c.ok());
  EXPECT_FLOAT_EQ(coded_moments(std::vector<float>(10, 0.25f), {}, *c).mean, 0.25f);
  EXPECT_FALSE(normalize_codebook_moments({}, {}, {-1.0f, 1.0f}).ok());
  EXPECT_FALSE(normalize_codebook_moments({0.1f}, {}, {1.0f, -1.0f}).ok());
  EXPECT_FALSE(normalize_codebook_moments({0.1f, NAN}, {}, {-1.0f, 1.0f}).ok());
}

// The order travels in the configuration file ("key_order"), -qnorm in its spec.
TEST(KvReorder, ConfigFileRoundTripAndRefusals) {
  std::vector<int32_t> order(36);
  for (int j = 0; j < 36; ++j) order[j] = (j * 5) % 36;  // 5 is coprime to 36
  ASSERT_TRUE(check_channel_order(order, 36, "o").ok());
  KvSpec spec = parse_ok("k2v2-nuq-qnorm-rot-reorder");
  spec.key_order.layers = {order, order};
  std::reverse(spec.key_order.layers[1].begin(), spec.key_order.layers[1].end());
  spec.codebooks.layers = {{{-1.1f, -0.2f, 0.3f, 1.05f}, {-1, 0, 0.1f, 1}}, {{-1, -0.1f, 0.2f, 1}, {-1, -0.5f, 0.5f, 1}}};
  const nlohmann::json j = kv_config_to_json(spec);
  auto back = kv_config_from_json(nlohmann::json::parse(j.dump()), "kv.json");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->key_order, spec.key_order);
  EXPECT_EQ(back->codebooks, spec.codebooks);
  EXPECT_TRUE(back->reorder_keys && back->qnorm && back->rotate);
  EXPECT_FALSE(back->needs_fitting());
  EXPECT_TRUE(check_kv_spec(*back, KvCacheShape{2, 16, 3, 12}).ok());
  // Right as JSON, wrong for the model: the layer count and the width are named.
  Status wrong = check_kv_spec(*back, KvCacheShape{3, 16, 3, 12});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.message().find("key_order has 2 layers"), std::string::npos) << wrong.message();
  wrong = check_kv_spec(*back, KvCacheShape{2, 16, 3, 8});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.message().find("key_order[0]: 36 channels for keys of 24"), std::string::npos) << wrong.message();

  auto with = [&](const std::string& field_json) {
    nlohmann::json bad = j;
    bad["key_order"] = nlohmann::json::parse(field_json);
    return kv_config_from_json(bad, "kv.json");
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[[0, 1, 2], [0, 1, 1]]", "kv.json: key_order[1]: not a permutation: channel 1 at entries 1 and 2"},
      {"[[0, 1, 2], [0, 1]]", "kv.json: key_order[1] has 2 channels, key_order[0] 3"},
      {"[[0, 1, 3]]", "kv.json: key_order[0][2] = 3 is not a channel index in [0, 3)"},
      {"[[0, -1, 2]]", "kv.json: key_order[0][1] = -1 is not a channel index"},
      {"[[0, 1.5, 2]]", "kv.json: key_order[0][1] = 1.5 is not a channel index"},
      {"[[0, \"1\", 2]]", "key_order[0][1] = \"1\""},
      {"[[0, 18446744073709551615]]", "key_order[0][1] = 18446744073709551615"},
      {"[[]]", "kv.json: key_order[0] must be an array of 1.."},
      {"[]", "kv.json: \"key_order\" must be an array"},
      {"{\"0\": [0]}", "kv.json: \"key_order\" must be an array"},
      {"[7]", "kv.json: key_order[0] must be an array"},
  };
  for (const auto& [field, needle] : cases) {
    auto r = with(field);
    ASSERT_FALSE(r.ok()) << field << " was accepted";
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << field << ": " << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << "one line: " << r.status().message();
  }
  // An order for a spec without -reorder is refused, not ignored.
  nlohmann::json stray = kv_config_to_json(parse_ok("k2v2-rot"));
  stray["key_order"] = j["key_order"];
  auto r = kv_config_from_json(stray, "kv.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("has no -reorder"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace lowbit
