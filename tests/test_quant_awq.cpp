// AWQ scale search with known answers: α = 0 gives s = 1 exactly and the error
// of plain RTN bit for bit; on inputs with a few loud channels a larger α wins
// and lowers the output error clearly; the scales follow mean|x|^α normalised by
// sqrt(max · min).
#include <gtest/gtest.h>

#include <cmath>

#include "quant/quantizers.h"
#include "test_quant_util.h"

namespace lowbit {
namespace {

using testing::dequantized;
using testing::gaussian;
using testing::named_format;

struct Layer {
  int64_t n = 256, cols = 256;
  std::vector<float> x;                 // [n, cols]
  std::vector<std::vector<float>> w;    // [rows_k, cols]
  std::vector<int64_t> rows;
  std::vector<float> mean_abs;          // [cols]
};

Layer make_layer(uint64_t seed, float loud) {
  Layer l;
  l.x = gaussian(l.n, l.cols, seed);
  for (int64_t t = 0; t < l.n; ++t) {
    for (int64_t j = 0; j < l.cols; j += 29) l.x[t * l.cols + j] *= loud;  // outlier channels
  }
  l.rows = {64, 32};
  for (size_t k = 0; k < l.rows.size(); ++k) l.w.push_back(gaussian(l.rows[k], l.cols, seed + 10 + k));
  l.mean_abs.assign(l.cols, 0.0f);
  for (int64_t j = 0; j < l.cols; ++j) {
    double s = 0.0;
    for (int64_t t = 0; t < l.n; ++t) s += std::fabs(l.x[t * l.cols + j]);
    l.mean_abs[j] = static_cast<float>(s / l.n);
  }
  return l;
}

Expected<AwqResult> search(const Layer& l, const BlockFormat& f, int grid) {
  std::vector<const float*> ptrs;
  for (const auto& w : l.w) ptrs.push_back(w.data());
  AwqSearch o;
  o.grid = grid;
  return search_awq_scales(f, ptrs, l.rows, l.cols, l.x.data(), l.n, l.mean_abs, o);
}

// Σ_k ‖X W_kᵀ − X Q_kᵀ‖² of plain RTN, computed like the search does (sgemm, double sums).
double rtn_output_error(const Layer& l, const BlockFormat& f) {
  double err = 0.0;
  for (size_t k = 0; k < l.w.size(); ++k) {
    auto q = quantize_rtn(f, l.w[k].data(), l.rows[k], l.cols, {});
    const std::vector<float> back = dequantized(*q);
    std::vector<float> y0(static_cast<size_t>(l.n * l.rows[k])), y1(y0.size());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l.n, l.rows[k], l.cols, 1.0f, l.x.data(), l.cols,
                l.w[k].data(), l.cols, 0.0f, y0.data(), l.rows[k]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l.n, l.rows[k], l.cols, 1.0f, l.x.data(), l.cols,
                back.data(), l.cols, 0.0f, y1.data(), l.rows[k]);
    err += testing::sum_sq_diff(y1, y0);
  }
  return err;
}

TEST(QuantAwq, AlphaZeroIsRtnBitForBit) {
  const Layer l = make_layer(1, 20.0f);
  for (const char* name : {"int4_g128", "int3_g128", "nvfp4"}) {
    const BlockFormat& f = named_format(name);
    auto r = search(l, f, 1);  // the grid {0}
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->alpha, 0.0f);
    for (float s : r->scales) ASSERT_EQ(s, 1.0f);
    // W · diag(1) is W itself, so quantizing it is RTN exactly.
    std::vector<float> ws(l.w[0]);
    for (int64_t i = 0; i < l.rows[0] * l.cols; ++i) ws[i] = l.w[0][i] * r->scales[i % l.cols];
    auto a = quantize_rtn(f, ws.data(), l.rows[0], l.cols, {});
    auto b = quantize_rtn(f, l.w[0].data(), l.rows[0], l.cols, {});
    EXPECT_EQ(a->tensor.codes, b->tensor.codes);
    EXPECT_EQ(a->tensor.scales, b->tensor.scales);
    const double rtn = rtn_output_error(l, f);  // the same products, summed in another order
    EXPECT_NEAR(r->error, rtn, 1e-12 * rtn) << name;
  }
}

TEST(QuantAwq, BeatsRtnOnOutlierChannels) {
  for (uint64_t seed : {1, 2, 3}) {
    const Layer l = make_layer(seed, 20.0f);
    for (const char* name : {"int4_g128", "int3_g128"}) {
      const BlockFormat& f = named_format(name);
      auto r = search(l, f, 20);
      ASSERT_TRUE(r.ok());
      const double rtn = rtn_output_error(l, f);
      EXPECT_GT(r->alpha, 0.0f) << name;
      EXPECT_LT(r->error, 0.8 * rtn) << name << " seed " << seed << ": alpha " << r->alpha;
    }
  }
}

TEST(QuantAwq, ScalesFollowMeanAbsPowerNormalised) {
  const Layer l = make_layer(4, 20.0f);
  auto r = search(l, named_format("int4_g128"), 20);
  ASSERT_TRUE(r.ok());
  float lo = 1e30f, hi = 0.0f;
  for (float m : l.mean_abs) {
    lo = std::min(lo, std::pow(m, r->alpha));
    hi = std::max(hi, std::pow(m, r->alpha));
  }
  const float norm = std::sqrt(lo * hi);
  for (int64_t j = 0; j < l.cols; ++j) {
    EXPECT_NEAR(r->scales[j], std::pow(l.mean_abs[j], r->alpha) / norm, 1e-5f * r->scales[j]) << j;
  }
  // Normalised: max · min = 1.
  const auto [mn, mx] = std::minmax_element(r->scales.begin(), r->scales.end());
  EXPECT_NEAR(*mn * *mx, 1.0f, 1e-5f);
}

TEST(QuantAwq, RejectsBadShapes) {
  const Layer l = make_layer(5, 1.0f);
  std::vector<const float*> ptrs = {l.w[0].data()};
  const BlockFormat& f = named_format("int4_g128");
  EXPECT_FALSE(search_awq_scales(f, ptrs, {64, 32}, l.cols, l.x.data(), l.n, l.mean_abs, {}).ok());
  EXPECT_FALSE(search_awq_scales(f, ptrs, {64}, l.cols, l.x.data(), l.n, std::vector<float>(3), {}).ok());
  AwqSearch zero;
  zero.grid = 0;
  EXPECT_FALSE(search_awq_scales(f, ptrs, {64}, l.cols, l.x.data(), l.n, l.mean_abs, zero).ok());
}

}  // namespace
}  // namespace lowbit
