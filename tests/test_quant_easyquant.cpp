// EasyQuant with known answers: with no outliers it is RTN with the same clip
// search, bit for bit (every kind of format); outliers are the largest |w| of
// each row and come back exactly; the search never loses to min-max on the
// non-outlier weights; bits per weight include the outlier table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "quant/quantizers.h"
#include "test_quant_util.h"

namespace lowbit {
namespace {

using testing::dequantized;
using testing::gaussian;
using testing::named_format;


TEST(QuantEasyQuant, NoOutliersEqualsRtnWithTheSameSearch) {
  const int64_t rows = 9, cols = 300;
  const std::vector<float> w = testing::heavy_tailed(rows, cols, 1, 41, 8.0f);
  for (const char* name : {"int4_g128", "int4_g128_asym", "int3_g128", "int2_g64", "nvfp4", "mxfp4", "nf4_g64",
                           "int8_pc", "fp8_e4m3", "bf16"}) {
    SCOPED_TRACE(name);
    const BlockFormat& f = named_format(name);
    for (int steps : {20, 7}) {
      EasyQuantOptions e;
      e.outlier_fraction = 0.0f;
      e.search_steps = steps;
      e.clip_min = 0.6f;
      RtnOptions r;
      r.search = ScaleSearch::kMseClip;
      r.clip_steps = steps;
      r.clip_min = 0.6f;
      auto a = quantize_easyquant(f, w.data(), rows, cols, e);
      auto b = quantize_rtn(f, w.data(), rows, cols, r);
      ASSERT_TRUE(a.ok() && b.ok()) << a.status().message();
      EXPECT_TRUE(a->outliers.empty());
      EXPECT_EQ(a->tensor.codes, b->tensor.codes);
      EXPECT_EQ(a->tensor.scales, b->tensor.scales);
      EXPECT_EQ(a->tensor.mins, b->tensor.mins);
      EXPECT_EQ(a->tensor.tensor_scale, b->tensor.tensor_scale);
    }
  }
  // Tiles spanning rows (block2d), with a partial tile.
  const std::vector<float> big = testing::heavy_tailed(130, 200, 2, 41, 8.0f);
  EasyQuantOptions e;
  e.outlier_fraction = 0.0f;
  e.search_steps = 20;
  RtnOptions r;
  r.search = ScaleSearch::kMseClip;
  auto a = quantize_easyquant(named_format("fp8_e4m3_b128"), big.data(), 130, 200, e);
  auto b = quantize_rtn(named_format("fp8_e4m3_b128"), big.data(), 130, 200, r);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tensor.codes, b->tensor.codes);
  EXPECT_EQ(a->tensor.scales, b->tensor.scales);
}

TEST(QuantEasyQuant, OutliersAreTheLargestPerRowAndExact) {
  const int64_t rows = 10, cols = 256;
  const std::vector<float> w = testing::heavy_tailed(rows, cols, 3, 41, 8.0f);
  EasyQuantOptions o;
  o.outlier_fraction = 0.02f;  // round(5.12) = 5 per row
  auto q = quantize_easyquant(named_format("int4_g128"), w.data(), rows, cols, o);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->outliers.size(), static_cast<size_t>(rows * 5));
  EXPECT_TRUE(std::is_sorted(q->outliers.begin(), q->outliers.end(), [](const SparseOutlier& a, const SparseOutlier& b) {
    return a.row != b.row ? a.row < b.row : a.col < b.col;
  }));
  const std::vector<float> back = dequantized(*q);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> mags;
    for (int64_t c = 0; c < cols; ++c) mags.push_back(std::fabs(w[r * cols + c]));
    std::sort(mags.begin(), mags.end(), std::greater<float>());
    for (int k = 0; k < 5; ++k) {
      const SparseOutlier& o = q->outliers[r * 5 + k];
      EXPECT_EQ(o.row, r);
      EXPECT_EQ(o.value, w[r * cols + o.col]);
      EXPECT_EQ(back[r * cols + o.col], w[r * cols + o.col]);
      EXPECT_GE(std::fabs(o.value), mags[4]);
    }
  }
  EXPECT_DOUBLE_EQ(q->bits_per_weight(),
                   named_format("int4_g128").bits_per_element(rows, cols) + 96.0 * rows * 5 / (rows * cols));
}

TEST(QuantEasyQuant, SearchBeatsMinMaxOnTheRest) {
  const int64_t rows = 16, cols = 256;
  for (uint64_t seed : {4, 5}) {
    const std::vector<float> w = testing::heavy_tailed(rows, cols, seed, 41, 8.0f);
    for (const char* name : {"int4_g128", "int3_g128"}) {
      EasyQuantOptions o;
      auto q = quantize_easyquant(named_format(name), w.data(), rows, cols, o);
      ASSERT_TRUE(q.ok());
      // Min-max on the same weights with the same outliers taken out.
      std::vector<float> zeroed(w);
      for (const SparseOutlier& s : q->outliers) zeroed[s.row * cols + s.col] = 0.0f;
      auto mm = quantize_rtn(named_format(name), zeroed.data(), rows, cols, {});
      std::vector<float> mm_back = dequantized(*mm);
      for (const SparseOutlier& s : q->outliers) mm_back[s.row * cols + s.col] = s.value;
      auto rtn = quantize_rtn(named_format(name), w.data(), rows, cols, {});
      const double e_easy = testing::sum_sq_diff(w, dequantized(*q));
      const double e_mm = testing::sum_sq_diff(w, mm_back);
      const double e_rtn = testing::sum_sq_diff(w, dequantized(*rtn));
      EXPECT_LE(e_easy, e_mm) << name;
      EXPECT_LT(e_easy, 0.8 * e_rtn) << name << " seed " << seed;
    }
  }
}

TEST(QuantEasyQuant, RejectsBadOptions) {
  const std::vector<float> w = gaussian(2, 64, 1);
  EasyQuantOptions o;
  o.outlier_fraction = 1.0f;
  EXPECT_FALSE(quantize_easyquant(named_format("int4_g128"), w.data(), 2, 64, o).ok());
  o.outlier_fraction = 0.01f;
  o.search_steps = 0;
  EXPECT_FALSE(quantize_easyquant(named_format("int4_g128"), w.data(), 2, 64, o).ok());
}

}  // namespace
}  // namespace lowbit
