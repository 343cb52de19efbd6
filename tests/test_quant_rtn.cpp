// RTN and the stored-weight bookkeeping with known answers: RTN is the formats
// layer's quantize; the MSE clip search is never worse than min-max; the
// importance-weighted search minimises the weighted error; bits per weight count
// codes, scales, outliers and the low-rank factors; dequantize_weight
// substitutes outliers and adds U·V.
#include <gtest/gtest.h>

#include <cstring>

#include "quant/quantizers.h"
#include "test_quant_util.h"

namespace lowbit {
namespace {

using testing::dequantized;
using testing::gaussian;
using testing::named_format;

double weighted_error(const std::vector<float>& w, const std::vector<float>& q, int64_t cols,
                      const std::vector<float>& importance) {
  double s = 0.0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double d = static_cast<double>(w[i]) - static_cast<double>(q[i]);
    s += static_cast<double>(importance[i % cols]) * d * d;
  }
  return s;
}


TEST(QuantRtn, MinMaxIsTheFormatsQuantize) {
  const int64_t rows = 6, cols = 200;
  const std::vector<float> w = gaussian(rows, cols, 1);
  for (const char* name : {"int4_g128", "int3_g128", "nvfp4", "mxfp4", "int8_pc"}) {
    const BlockFormat& f = named_format(name);
    auto q = quantize_rtn(f, w.data(), rows, cols, {});
    auto ref = quantize(f, w.data(), rows, cols);
    ASSERT_TRUE(q.ok() && ref.ok());
    EXPECT_EQ(q->format, name);
    EXPECT_EQ(q->tensor.codes, ref->codes);
    EXPECT_EQ(q->tensor.scales, ref->scales);
    EXPECT_EQ(q->tensor.mins, ref->mins);
    EXPECT_DOUBLE_EQ(q->bits_per_weight(), f.bits_per_element(rows, cols)) << name;
  }
}

TEST(QuantRtn, MseSearchNeverWorseThanMinMax) {
  const int64_t rows = 16, cols = 320;
  for (const char* name : {"int4_g128", "int4_g128_asym", "int3_g128", "int2_g64", "nvfp4", "mxfp4", "nf4_g64"}) {
    for (uint64_t seed : {1, 2, 3}) {
      const std::vector<float> w = testing::heavy_tailed(rows, cols, seed, 53, 6.0f);
      const BlockFormat& f = named_format(name);
      RtnOptions mse;
      mse.search = ScaleSearch::kMseClip;
      auto a = quantize_rtn(f, w.data(), rows, cols, {});
      auto b = quantize_rtn(f, w.data(), rows, cols, mse);
      ASSERT_TRUE(a.ok() && b.ok());
      const double e_minmax = testing::sum_sq_diff(w, dequantized(*a));
      const double e_mse = testing::sum_sq_diff(w, dequantized(*b));
      EXPECT_LE(e_mse, e_minmax) << name << " seed " << seed;
    }
  }
  // On heavy tails INT3 clipping helps strictly.
  const std::vector<float> w = testing::heavy_tailed(rows, cols, 9, 53, 6.0f);
  RtnOptions mse;
  mse.search = ScaleSearch::kMseClip;
  auto a = quantize_rtn(named_format("int3_g128"), w.data(), rows, cols, {});
  auto b = quantize_rtn(named_format("int3_g128"), w.data(), rows, cols, mse);
  EXPECT_LT(testing::sum_sq_diff(w, dequantized(*b)), 0.95 * testing::sum_sq_diff(w, dequantized(*a)));
}

TEST(QuantRtn, ImportanceWeightedSearchMinimisesWeightedError) {
  const int64_t rows = 12, cols = 256;
  const std::vector<float> w = testing::heavy_tailed(rows, cols, 4, 53, 6.0f);
  std::vector<float> importance(cols);
  for (int64_t j = 0; j < cols; ++j) importance[j] = (j % 17 == 0) ? 50.0f : 0.1f + 0.01f * static_cast<float>(j % 7);
  for (const char* name : {"int4_g128", "int3_g128", "nvfp4"}) {
    const BlockFormat& f = named_format(name);
    RtnOptions plain, weighted;
    plain.search = weighted.search = ScaleSearch::kMseClip;
    weighted.importance = importance;
    auto a = quantize_rtn(f, w.data(), rows, cols, plain);
    auto b = quantize_rtn(f, w.data(), rows, cols, weighted);
    ASSERT_TRUE(a.ok() && b.ok());
    const double ea = weighted_error(w, dequantized(*a), cols, importance);
    const double eb = weighted_error(w, dequantized(*b), cols, importance);
    EXPECT_LE(eb, ea) << name;
    // Each block's choice is the weighted optimum over the same candidates, so the
    // unweighted error can only be at least the plain search's.
    EXPECT_GE(testing::sum_sq_diff(w, dequantized(*b)), testing::sum_sq_diff(w, dequantized(*a))) << name;
  }
  RtnOptions wrong;
  wrong.importance = std::vector<float>(cols - 1, 1.0f);
  EXPECT_FALSE(quantize_rtn(named_format("int4_g128"), w.data(), rows, cols, wrong).ok());
}

TEST(QuantWeight, BitsPerWeightCountOutliersAndFactors) {
  const int64_t rows = 64, cols = 256;
  const std::vector<float> w = gaussian(rows, cols, 2);
  auto q = quantize_rtn(named_format("int4_g128"), w.data(), rows, cols, {});
  ASSERT_TRUE(q.ok());
  const uint64_t base = packed_bytes(named_format("int4_g128").layout, rows, cols);  // 8192 + 64 * 2 * 2
  EXPECT_EQ(base, 8192u + 256u);
  EXPECT_EQ(q->storage_bytes(), base);
  q->outliers.push_back({1, 2, 3.0f});
  q->outliers.push_back({5, 6, -7.0f});
  EXPECT_EQ(q->storage_bytes(), base + 24);
  ASSERT_TRUE(add_lowrank_correction(*q, w.data(), 4, "fp16").ok());
  EXPECT_EQ(q->storage_bytes(), base + 24 + 2 * (rows * 4 + 4 * cols));
  ASSERT_TRUE(add_lowrank_correction(*q, w.data(), 2, "fp32").ok());
  EXPECT_EQ(q->storage_bytes(), base + 24 + 4 * (rows * 2 + 2 * cols));
  EXPECT_DOUBLE_EQ(q->bits_per_weight(), 8.0 * static_cast<double>(base + 24 + 4 * (rows * 2 + 2 * cols)) / (rows * cols));
  // NVFP4 counts its FP32 tensor scale.
  auto nv = quantize_rtn(named_format("nvfp4"), w.data(), rows, cols, {});
  ASSERT_TRUE(nv.ok());
  EXPECT_EQ(nv->storage_bytes(), packed_bytes(named_format("nvfp4").layout, rows, cols));
}

TEST(QuantWeight, DequantizeSubstitutesOutliersAndAddsLowRank) {
  // fp32 storage everywhere: W_hat = codes, outliers replaced, + U·V by hand.
  const std::vector<float> base = {1, 2, 3, 4, 5, 6};  // [2, 3]
  QuantizedWeight q;
  q.format = kFp32Storage;
  auto t = quantize_matrix(kFp32Storage, base.data(), 2, 3);
  ASSERT_TRUE(t.ok());
  q.tensor = *t;
  q.outliers = {{0, 1, -20.0f}, {1, 2, 0.5f}};
  EXPECT_EQ(testing::dequantized(q), (std::vector<float>{1, -20, 3, 4, 5, 0.5f}));
  const std::vector<float> u = {1, 2}, v = {10, 20, 30};  // [2, 1] x [1, 3]
  q.rank = 1;
  q.lowrank_format = kFp32Storage;
  q.lowrank_u = quantize_matrix(kFp32Storage, u.data(), 2, 1).value();
  q.lowrank_v = quantize_matrix(kFp32Storage, v.data(), 1, 3).value();
  EXPECT_EQ(testing::dequantized(q), (std::vector<float>{11, 0, 33, 24, 45, 60.5f}));
  q.outliers.push_back({2, 0, 1.0f});  // row 2 of a 2-row matrix
  std::vector<float> out(6);
  EXPECT_FALSE(dequantize_weight(q, out.data()).ok());
  q.outliers.pop_back();
  q.lowrank_v.cols = 2;
  EXPECT_FALSE(dequantize_weight(q, out.data()).ok());
  EXPECT_FALSE(quantize_matrix("fp33", base.data(), 2, 3).ok());
}

}  // namespace
}  // namespace lowbit
