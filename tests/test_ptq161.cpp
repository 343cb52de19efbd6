// PTQ1.61 (formats/ptq161_code.h, quant/ptq161.h, the kPtq161 packed layout):
// names and malformed names refused; bits per weight counted by hand; the mask
// finds planted salient channels (calibrated and data-free); the binarised
// block's levels are the known optimum and match a brute force over all sign
// patterns; decoded values follow the stored codes; malformed tensors refused;
// the packed layout decodes to the reference at awkward shapes; the recipe
// resolves. The GEMVs at every ISA level run in tests/test_kernel_table.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/half.h"
#include "model/packed_convert.h"
#include "pipeline/recipe.h"
#include "quant/ptq161.h"
#include "quant/quantizers.h"
#include "quant/weight_format.h"
#include "test_quant_util.h"
#include "test_quantize_util.h"

namespace lowbit {
namespace {

using testing::get;

// [rows, cols] N(0, 1), seeded.
std::vector<float> gaussian(int64_t rows, int64_t cols, uint64_t seed) { return testing::gaussian(rows, cols, seed); }

Ptq161Params params(const char* name) {
  auto p = parse_ptq161_format(name);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? *p : Ptq161Params{};
}

TEST(Ptq161Format, NamesParseAndMalformedNamesAreRefusedByName) {
  const Ptq161Params p = params("ptq161_s125_b192");
  EXPECT_EQ(p.salient_permille, 125);
  EXPECT_EQ(p.block, 192);
  EXPECT_EQ(ptq161_format_name(p), "ptq161_s125_b192");
  EXPECT_EQ(get(WeightFormat::find("ptq161_s0_b32")).name(), "ptq161_s0_b32");
  for (const char* bad : {"ptq161_s125", "ptq161_s1001_b192", "ptq161_s125_b100", "ptq161_s125_b0",
                          "ptq161_s125_b192x", "ptq161_sx_b32", "ptq161_", "ptq161_s-1_b32", "ptq161_s125_b8192"}) {
    auto r = parse_ptq161_format(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
    EXPECT_FALSE(WeightFormat::find(bad).ok()) << bad;
  }
}

// The sizes of ptq161_s125_b192 on SmolLM2's shapes, by hand (ptq161_code.h):
//   576 columns: ns = 72, nb = 504, 3 blocks; a row: 36 + 63 code bytes, (2 + 6) * 2 scale bytes
//   1536 columns: ns = 192, nb = 1344, 7 blocks; a row: 96 + 168 code bytes, (2 + 14) * 2 scale bytes
// plus the mask, ceil(cols / 8) bytes per tensor.
TEST(Ptq161Format, BitsPerWeightCountTheMaskAndEveryScale) {
  const WeightFormat f = get(WeightFormat::find("ptq161_s125_b192"));
  struct Case {
    int64_t rows, cols;
    uint64_t codes, scales;
  };
  for (const Case& c : {Case{1536, 576, 72 + 1536 * 99, 1536 * 16}, Case{576, 1536, 192 + 576 * 264, 576 * 32},
                        Case{576, 576, 72 + 576 * 99, 576 * 16}}) {
    const auto sizes = get(f.array_sizes(c.rows, c.cols));
    EXPECT_EQ(sizes.codes, c.codes);
    EXPECT_EQ(sizes.scales, c.scales);
    EXPECT_EQ(sizes.mins, 0u);
    const double bpw = 8.0 * static_cast<double>(c.codes + c.scales) / static_cast<double>(c.rows * c.cols);
    EXPECT_DOUBLE_EQ(get(f.bits_per_element(c.rows, c.cols)), bpw);
  }
  EXPECT_NEAR(get(f.bits_per_element(576, 576)), 1.6, 0.005);   // 8 * (72 + 576 * 115) / 576^2 = 1.5981
  EXPECT_NEAR(get(f.bits_per_element(576, 1536)), 1.54, 0.005);  // 8 * (192 + 576 * 296) / (576 * 1536) = 1.5435
  // A quantized tensor stores exactly those arrays.
  const std::vector<float> w = gaussian(5, 577, 3);
  const QuantizedWeight q = get(quantize_rtn(f, w.data(), 5, 577, {}));
  EXPECT_EQ(q.storage_bytes(), get(f.stored_bytes(5, 577)));
}

// 25 of 200 channels (s125) planted loud in the activations are the mask; without
// calibration data, 25 planted large-weight columns are.
TEST(Ptq161Quantizer, PlantedSalientChannelsAreChosen) {
  const Ptq161Params p = params("ptq161_s125_b64");
  const int64_t rows = 8, cols = 200;
  ASSERT_EQ(p.salient_cols(cols), 25);
  std::vector<float> w = gaussian(rows, cols, 11);
  std::mt19937 gen(5);
  std::vector<int32_t> planted;
  for (int32_t c = 3; c < cols && planted.size() < 25; c += 7 + static_cast<int32_t>(gen() % 3)) planted.push_back(c);
  ASSERT_EQ(planted.size(), 25u);
  std::vector<float> importance(cols);
  std::uniform_real_distribution<float> quiet(0.5f, 1.5f);
  for (float& v : importance) v = quiet(gen);
  for (int32_t c : planted) importance[c] = 50.0f + quiet(gen);
  EXPECT_EQ(ptq161_select_salient(p, w.data(), rows, cols, importance), planted);
  for (int32_t c : planted) {
    for (int64_t r = 0; r < rows; ++r) w[r * cols + c] *= 10.0f;
  }
  EXPECT_EQ(ptq161_select_salient(p, w.data(), rows, cols, {}), planted);
  // The stored mask is that set.
  const QuantizedTensor t = get(ptq161_quantize(p, w.data(), rows, cols, importance));
  EXPECT_EQ(get(ptq161_salient_columns(p, t)), planted);
}

// Known optima of the binarised block's levels (ptq161.h step 3).
TEST(Ptq161Quantizer, BinarisedBlockTakesTheKnownOptimalLevels) {
  std::vector<uint8_t> plus(8);
  {  // exactly two levels, mu -+ alpha: recovered, signs as planted
    const std::vector<float> w = {0.7f, -0.3f, -0.3f, 0.7f, 0.7f, -0.3f, 0.7f, 0.7f};
    const Binarised b = ptq161_binarise(w.data(), nullptr, 8, plus.data());
    EXPECT_NEAR(b.mu, 0.2, 1e-7);
    EXPECT_NEAR(b.alpha, 0.5, 1e-7);
    EXPECT_EQ(plus, (std::vector<uint8_t>{1, 0, 0, 1, 1, 0, 1, 1}));
  }
  {  // symmetric: alpha = mean |w| = 2, mu = 0
    const std::vector<float> w = {-3, -1, 1, 3};
    const Binarised b = ptq161_binarise(w.data(), nullptr, 4, plus.data());
    EXPECT_NEAR(b.mu, 0.0, 1e-12);
    EXPECT_NEAR(b.alpha, 2.0, 1e-12);
  }
  {  // weighted: levels are the weighted means of {1, 2} (d 3, 1) and {10, 12} (d 1, 3): 1.25 and 11.5
    const std::vector<float> w = {1, 2, 10, 12}, d = {3, 1, 1, 3};
    const Binarised b = ptq161_binarise(w.data(), d.data(), 4, plus.data());
    EXPECT_NEAR(b.mu, (1.25 + 11.5) / 2, 1e-12);
    EXPECT_NEAR(b.alpha, (11.5 - 1.25) / 2, 1e-12);
  }
  {  // a constant block: one level, alpha 0
    const std::vector<float> w = {0.25f, 0.25f, 0.25f};
    const Binarised b = ptq161_binarise(w.data(), nullptr, 3, plus.data());
    EXPECT_EQ(b.alpha, 0.0);
    EXPECT_NEAR(b.mu, 0.25, 1e-12);
  }
}

// sum d (w - mu - alpha b)^2 of the returned levels equals the minimum over all
// 2^n sign patterns, each with its least-squares line (weighted_affine_fit).
TEST(Ptq161Quantizer, BinarisedBlockMatchesBruteForceOverAllSigns) {
  std::mt19937 gen(17);
  std::uniform_real_distribution<float> dw(0.1f, 3.0f);
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 3 + trial % 8;
    const std::vector<float> w = gaussian(1, n, 100 + trial);
    std::vector<float> d(n);
    for (float& v : d) v = dw(gen);
    auto cost = [&](double mu, double alpha, const std::vector<float>& s) {
      double e = 0.0;
      for (int i = 0; i < n; ++i) e += d[i] * std::pow(w[i] - mu - alpha * s[i], 2);
      return e;
    };
    double brute = INFINITY;
    std::vector<float> s(n);
    for (uint32_t m = 0; m < (1u << n); ++m) {
      for (int i = 0; i < n; ++i) s[i] = (m >> i) & 1u ? 1.0f : -1.0f;
      const AffineFit f = weighted_affine_fit(w.data(), s.data(), d.data(), n);
      brute = std::min(brute, cost(f.offset, f.scale, s));
    }
    std::vector<uint8_t> plus(n);
    const Binarised b = ptq161_binarise(w.data(), d.data(), n, plus.data());
    for (int i = 0; i < n; ++i) s[i] = plus[i] ? 1.0f : -1.0f;
    EXPECT_GE(b.alpha, 0.0);
    // Both in double from float data: equal up to the rounding of sums of n terms.
    EXPECT_NEAR(cost(b.mu, b.alpha, s), brute, 1e-9 * (1.0 + brute)) << "trial " << trial;
  }
}

// The stored tensor decodes to s q + m on salient columns (q in 0..15) and
// mu -+ alpha per block elsewhere. The binarised error of a block is at most the
// data-free baseline's (alpha = mean |w|, mu = 0, b = sign w), a feasible point of
// the exact minimisation, plus what the FP16 rounding of the levels can add: with
// each level moved by at most delta = 2^-10 (|mu| + |alpha|) (half an FP16 ulp,
// relative to the stored values), sum (e_i + delta)^2 <= E + 2 delta sqrt(n E) + n delta^2
// for E <= base (Cauchy-Schwarz); re-signing after rounding only lowers it.
TEST(Ptq161Quantizer, DecodedValuesFollowTheStoredCodes) {
  const Ptq161Params p = params("ptq161_s250_b32");
  const int64_t rows = 3, cols = 70;  // ns = 18 (17.5 rounded), nb = 52: blocks of 32 and 20
  ASSERT_EQ(p.salient_cols(cols), 18);
  const std::vector<float> w = gaussian(rows, cols, 21);
  const QuantizedTensor t = get(ptq161_quantize(p, w.data(), rows, cols, {}));
  std::vector<float> out(rows * cols);
  ASSERT_TRUE(ptq161_dequantize(p, t, out.data()).ok());
  const std::vector<int32_t> sal = get(ptq161_salient_columns(p, t));
  auto f16 = [](const uint8_t* b) { return fp16_to_float(static_cast<uint16_t>(b[0] | (b[1] << 8))); };
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* sc = t.scales.data() + r * p.row_scales(cols) * 2;
    const float s = f16(sc), m = f16(sc + 2);
    ASSERT_GT(s, 0.0f);
    for (int32_t c : sal) {
      const float q = (out[r * cols + c] - m) / s;
      EXPECT_NEAR(q, std::nearbyint(q), 1e-3) << r << "," << c;
      EXPECT_GE(std::nearbyint(q), 0.0f);
      EXPECT_LE(std::nearbyint(q), 15.0f);
    }
    std::vector<int64_t> binary;
    for (int64_t c = 0; c < cols; ++c) {
      if (std::find(sal.begin(), sal.end(), c) == sal.end()) binary.push_back(c);
    }
    ASSERT_EQ(static_cast<int64_t>(binary.size()), p.binary_cols(cols));
    for (int64_t b0 = 0, blk = 0; b0 < static_cast<int64_t>(binary.size()); b0 += p.block, ++blk) {
      const int64_t n = std::min<int64_t>(p.block, static_cast<int64_t>(binary.size()) - b0);
      const float alpha = f16(sc + 4 + 4 * blk), mu = f16(sc + 6 + 4 * blk);
      double mean_abs = 0.0, err = 0.0, base = 0.0;
      for (int64_t i = b0; i < b0 + n; ++i) mean_abs += std::fabs(w[r * cols + binary[i]]) / static_cast<double>(n);
      for (int64_t i = b0; i < b0 + n; ++i) {
        const double v = w[r * cols + binary[i]], got = out[r * cols + binary[i]];
        EXPECT_TRUE(got == mu + alpha || got == mu - alpha) << r << "," << binary[i];
        err += (got - v) * (got - v);
        base += (std::copysign(mean_abs, v) - v) * (std::copysign(mean_abs, v) - v);
      }
      const double delta = 0x1.0p-10 * (std::fabs(mu) + std::fabs(alpha));
      EXPECT_LE(err, base + 2 * delta * std::sqrt(n * base) + n * delta * delta) << "row " << r << " block " << blk;
    }
  }
}

TEST(Ptq161Format, MalformedTensorsAreRefusedByName) {
  const Ptq161Params p = params("ptq161_s125_b64");
  const std::vector<float> w = gaussian(4, 40, 5);  // ns = 5
  const QuantizedTensor good = get(ptq161_quantize(p, w.data(), 4, 40, {}));
  std::vector<float> out(4 * 40);
  ASSERT_TRUE(ptq161_dequantize(p, good, out.data()).ok());
  auto refused = [&](QuantizedTensor t, const char* what) {
    const Status s = ptq161_dequantize(p, t, out.data());
    ASSERT_FALSE(s.ok()) << what;
    EXPECT_NE(s.message().find("ptq161_s125_b64"), std::string::npos) << s.message();
  };
  QuantizedTensor t = good;
  t.codes.pop_back();
  refused(t, "short codes");
  t = good;
  t.scales.push_back(0);
  refused(t, "long scales");
  t = good;
  t.mins.push_back(0);
  refused(t, "mins");
  t = good;
  for (int c = 0; c < 40; ++c) {  // one more salient column
    if (!((t.codes[c / 8] >> (c % 8)) & 1u)) {
      t.codes[c / 8] |= static_cast<uint8_t>(1u << (c % 8));
      break;
    }
  }
  refused(t, "mask count");
  const std::vector<float> w2 = gaussian(2, 37, 6);  // 37 columns: mask bits 37..39 are padding
  QuantizedTensor u = get(ptq161_quantize(p, w2.data(), 2, 37, {}));
  int first = 0;
  while (!((u.codes[first / 8] >> (first % 8)) & 1u)) ++first;
  u.codes[first / 8] &= static_cast<uint8_t>(~(1u << (first % 8)));
  u.codes[4] |= 0x80;  // bit 39: past the columns, same count
  const Status s = ptq161_dequantize(p, u, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("past"), std::string::npos) << s.message();
  std::vector<float> bad = w;
  bad[7] = NAN;
  EXPECT_FALSE(ptq161_quantize(p, bad.data(), 4, 40, {}).ok());
  std::vector<float> short_importance(39, 1.0f);
  EXPECT_FALSE(ptq161_quantize(p, w.data(), 4, 40, short_importance).ok());
}

// The packed layout decodes every element to the reference decoder's value at
// awkward shapes and salient shares (none, some, all).
TEST(Ptq161Packed, PackedValuesAreTheReferenceDecode) {
  for (const char* name : {"ptq161_s125_b192", "ptq161_s0_b32", "ptq161_s1000_b64", "ptq161_s333_b96"}) {
    for (int64_t rows : {1, 3}) {
      for (int64_t cols : {1, 7, 31, 33, 200, 577}) {
        SCOPED_TRACE(::testing::Message() << name << " [" << rows << ", " << cols << "]");
        const std::vector<float> w = gaussian(rows, cols, 7 + cols);
        QuantizedWeight q;
        q.format = name;
        q.tensor = get(quantize_matrix(name, w.data(), rows, cols));
        EXPECT_EQ(packed_unsupported_reason(q), "");
        const PackedMatrix pm = get(pack_quantized_weight(q));
        ASSERT_TRUE(pm.validate().ok());
        EXPECT_EQ(pm.kind, PackedKind::kPtq161);
        const std::vector<float> ref = testing::dequantized(q);
        for (int64_t i = 0; i < rows * cols; ++i) ASSERT_EQ(packed_value(pm, i / cols, i % cols), ref[i]) << i;
      }
    }
  }
}

TEST(Ptq161Recipe, BuiltinRecipeStoresPtq161WithTheCalibratedMask) {
  const Recipe r = get(load_recipe("w1p6-ptq161"));
  EXPECT_EQ(r.default_rule.format, "ptq161_s125_b192");
  EXPECT_EQ(r.default_rule.method, QuantMethod::kRtn);
  EXPECT_TRUE(r.default_rule.options.importance);
  EXPECT_NEAR(get(rule_bits_per_weight(r.default_rule, 1536, 576)), 1.6, 0.005);
}

}  // namespace
}  // namespace lowbit
