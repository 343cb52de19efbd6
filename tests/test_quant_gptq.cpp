// GPTQ with known answers.
//  - Against an independent reference written here: dense, column by column,
//    the textbook OBS update with the inverse Hessian of the remaining columns
//    kept by Gaussian elimination (no Cholesky, no lazy batches), and its own
//    scalar quantizers for INT8 per row, INT4 symmetric g128 and UINT3
//    asymmetric g128 (FP16 scales via core/half.h). Agreement to 1e-5.
//  - Diagonal H: GPTQ has nothing to propagate and equals RTN bit for bit.
//  - Weights already on the grid come back exactly whatever H is.
//  - The proxy error tr((W−Q)H(W−Q)ᵀ) equals ‖X Wᵀ − X Qᵀ‖² for H = XᵀX, and
//    GPTQ's is never above RTN's on random well-conditioned H.
//  - Dead columns (H_jj = 0) are zeroed, not NaN.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/half.h"
#include "quant/quantizers.h"
#include "test_quant_util.h"

namespace lowbit {
namespace {

using testing::dequantized;
using testing::gaussian;
using testing::gram;
using testing::least_squares;
using testing::named_format;
using testing::Problem;

// ---- The independent reference -------------------------------------------

enum class RefQuant { kInt8Row, kInt4SymG128, kUint3AsymG128 };

float fp16_round(float v) { return fp16_to_float(float_to_fp16(v)); }

// Quantizes group values x (any count) with parameters fitted to `fit`.
struct RefParams {
  float scale = 0.0f, min = 0.0f;
};

RefParams fit_params(RefQuant kind, const std::vector<float>& fit) {
  RefParams p;
  if (kind == RefQuant::kUint3AsymG128) {
    float mn = 0.0f, mx = 0.0f;
    for (float v : fit) {
      mn = std::min(mn, v);
      mx = std::max(mx, v);
    }
    p.min = fp16_round(mn);
    p.scale = fp16_round(std::max((mx - p.min) / 7.0f, 0.0f));
    return p;
  }
  float amax = 0.0f;
  for (float v : fit) amax = std::max(amax, std::fabs(v));
  p.scale = kind == RefQuant::kInt8Row ? amax / 127.0f : fp16_round(amax / 7.0f);
  return p;
}

float ref_quant(RefQuant kind, const RefParams& p, float x) {
  if (kind == RefQuant::kUint3AsymG128) {
    const float code = p.scale == 0.0f ? 0.0f : std::nearbyint(std::clamp((x - p.min) / p.scale, 0.0f, 7.0f));
    const float scaled = code * p.scale;
    return scaled + p.min;
  }
  const float top = kind == RefQuant::kInt8Row ? 127.0f : 7.0f;
  if (p.scale == 0.0f) return 0.0f;
  return std::nearbyint(std::clamp(x / p.scale, -top, top)) * p.scale;
}

// Q [rows, cols] by the textbook algorithm.
std::vector<float> reference_gptq(RefQuant kind, const std::vector<float>& w_in, int64_t rows, int64_t n,
                                  std::vector<double> h, double damp_percent, bool act_order, bool static_groups) {
  const int64_t group = kind == RefQuant::kInt8Row ? n : 128;
  std::vector<double> w(w_in.begin(), w_in.end());
  for (int64_t j = 0; j < n; ++j) {
    if (h[j * n + j] == 0.0) {
      h[j * n + j] = 1.0;
      for (int64_t r = 0; r < rows; ++r) w[r * n + j] = 0.0;
    }
  }
  const int64_t groups = (n + group - 1) / group;
  std::vector<RefParams> params(static_cast<size_t>(rows * groups));
  std::vector<bool> have(static_cast<size_t>(groups), false);
  auto fit_group = [&](int64_t g) {
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> fit;
      for (int64_t c = g * group; c < std::min(n, (g + 1) * group); ++c) fit.push_back(static_cast<float>(w[r * n + c]));
      params[r * groups + g] = fit_params(kind, fit);
    }
    have[g] = true;
  };
  if (static_groups) {
    for (int64_t g = 0; g < groups; ++g) fit_group(g);
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (act_order) {
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return h[a * n + a] > h[b * n + b]; });
  }
  double mean = 0.0;
  for (int64_t j = 0; j < n; ++j) mean += h[j * n + j];
  for (int64_t j = 0; j < n; ++j) h[j * n + j] += damp_percent * mean / static_cast<double>(n);

  // Hinv = H⁻¹ by Gauss-Jordan with partial pivoting, in original indexing.
  std::vector<double> a(h), inv(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) inv[i * n + i] = 1.0;
  for (int64_t c = 0; c < n; ++c) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < n; ++r) {
      if (std::fabs(a[r * n + c]) > std::fabs(a[piv * n + c])) piv = r;
    }
    for (int64_t k = 0; k < n; ++k) {
      std::swap(a[c * n + k], a[piv * n + k]);
      std::swap(inv[c * n + k], inv[piv * n + k]);
    }
    const double d = a[c * n + c];
    for (int64_t k = 0; k < n; ++k) {
      a[c * n + k] /= d;
      inv[c * n + k] /= d;
    }
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a[r * n + c];
      if (f == 0.0) continue;
      for (int64_t k = 0; k < n; ++k) {
        a[r * n + k] -= f * a[c * n + k];
        inv[r * n + k] -= f * inv[c * n + k];
      }
    }
  }

  std::vector<float> q(w_in.size());
  for (int64_t p = 0; p < n; ++p) {
    const int64_t c = order[p];
    const int64_t g = c / group;
    if (!have[g]) fit_group(g);
    const double d = inv[c * n + c];
    for (int64_t r = 0; r < rows; ++r) {
      const float qv = ref_quant(kind, params[r * groups + g], static_cast<float>(w[r * n + c]));
      q[r * n + c] = qv;
      // OBS: δw_F = −(w_c − q_c) / [H_F⁻¹]_cc · [H_F⁻¹]_{c,F}
      const double e = (w[r * n + c] - static_cast<double>(qv)) / d;
      for (int64_t pp = p + 1; pp < n; ++pp) w[r * n + order[pp]] -= e * inv[c * n + order[pp]];
    }
    // H_F⁻¹ without c: Schur complement update over the remaining columns.
    for (int64_t i = p + 1; i < n; ++i) {
      const int64_t ci = order[i];
      const double f = inv[ci * n + c] / d;
      for (int64_t j = p + 1; j < n; ++j) inv[ci * n + order[j]] -= f * inv[c * n + order[j]];
    }
  }
  return q;
}

// ---- Tests -----------------------------------------------------------------

void expect_matches_reference(const char* format, RefQuant kind, bool act_order, bool static_groups, int block) {
  SCOPED_TRACE(::testing::Message() << format << " act_order=" << act_order << " static=" << static_groups
                                    << " block=" << block);
  Problem p = least_squares(12, 300, 7);
  GptqOptions o;
  o.act_order = act_order;
  o.static_groups = static_groups;
  o.block_size = block;
  auto q = quantize_gptq(named_format(format), p.w.data(), p.rows, p.cols, p.h, o);
  ASSERT_TRUE(q.ok()) << q.status().message();
  const std::vector<float> got = dequantized(*q);
  const std::vector<float> want = reference_gptq(kind, p.w, p.rows, p.cols, p.h, o.damp_percent, act_order, static_groups);
  const auto worst = testing::worst_diff(got, want);
  EXPECT_LE(worst.diff, 1e-5) << "at row " << worst.index / p.cols << " col " << worst.index % p.cols << ": "
                              << got[worst.index] << " vs reference " << want[worst.index];
}

TEST(QuantGptq, MatchesDenseReferenceWithoutGroups) {
  expect_matches_reference("int8_pc", RefQuant::kInt8Row, false, false, 128);
  expect_matches_reference("int8_pc", RefQuant::kInt8Row, false, false, 7);
  expect_matches_reference("int8_pc", RefQuant::kInt8Row, true, false, 64);
}

TEST(QuantGptq, MatchesDenseReferenceWithGroups) {
  // 300 columns: groups of 128, 128 and a partial 44.
  for (int block : {128, 32, 50, 1000}) {
    expect_matches_reference("int4_g128", RefQuant::kInt4SymG128, false, false, block);
    expect_matches_reference("int3_g128", RefQuant::kUint3AsymG128, false, false, block);
  }
  expect_matches_reference("int4_g128", RefQuant::kInt4SymG128, false, true, 128);
}

TEST(QuantGptq, MatchesDenseReferenceWithActOrder) {
  for (bool static_groups : {false, true}) {
    for (int block : {128, 50}) {
      expect_matches_reference("int4_g128", RefQuant::kInt4SymG128, true, static_groups, block);
      expect_matches_reference("int3_g128", RefQuant::kUint3AsymG128, true, static_groups, block);
    }
  }
}

TEST(QuantGptq, DiagonalHessianEqualsRtn) {
  const int64_t rows = 9, cols = 200;
  const std::vector<float> w = gaussian(rows, cols, 3);
  std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
  for (int64_t j = 0; j < cols; ++j) h[j * cols + j] = 1.0 + 0.01 * static_cast<double>(j);
  for (const char* name : {"int4_g128", "int3_g128", "int2_g64", "nvfp4", "mxfp4", "nf4_g64", "int8_pc", "bf16",
                           "int5_g32_asym", "int6_g64_asym", "int8_g128_asym", "int2_pc_asym", "int8_pc_asym"}) {
    SCOPED_TRACE(name);
    const BlockFormat& f = named_format(name);
    for (bool act_order : {false, true}) {
      GptqOptions o;
      o.act_order = act_order;
      auto g = quantize_gptq(f, w.data(), rows, cols, h, o);
      auto r = quantize_rtn(f, w.data(), rows, cols, {});
      ASSERT_TRUE(g.ok() && r.ok());
      EXPECT_EQ(g->tensor.codes, r->tensor.codes);
      EXPECT_EQ(g->tensor.scales, r->tensor.scales);
      EXPECT_EQ(g->tensor.mins, r->tensor.mins);
      EXPECT_EQ(g->tensor.tensor_scale, r->tensor.tensor_scale);
    }
  }
}

TEST(QuantGptq, WeightsOnTheGridComeBackExactly) {
  // Integers in [-7, 7] with a ±7 in every row of every group: INT4 g128 scale 1.
  const int64_t rows = 6, cols = 256;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows * cols; ++i) w[i] = static_cast<float>((i * 7919) % 15 - 7);
  for (int64_t r = 0; r < rows; ++r) {
    w[r * cols] = 7.0f;
    w[r * cols + 128] = -7.0f;
  }
  Problem p = least_squares(rows, cols, 5);
  auto q = quantize_gptq(named_format("int4_g128"), w.data(), rows, cols, p.h, {});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(dequantized(*q), w);
}

TEST(QuantGptq, ProxyErrorIsTheOutputError) {
  Problem p = least_squares(5, 40, 9);
  const std::vector<float> q = gaussian(5, 40, 10);
  // ‖X Wᵀ − X Qᵀ‖² directly.
  double direct = 0.0;
  for (int64_t t = 0; t < p.samples; ++t) {
    for (int64_t r = 0; r < p.rows; ++r) {
      double y = 0.0;
      for (int64_t j = 0; j < p.cols; ++j) {
        y += static_cast<double>(p.x[t * p.cols + j]) * (static_cast<double>(p.w[r * p.cols + j]) - q[r * p.cols + j]);
      }
      direct += y * y;
    }
  }
  EXPECT_NEAR(hessian_proxy_error(p.w.data(), q.data(), p.rows, p.cols, p.h), direct, 1e-9 * direct);
}

TEST(QuantGptq, NeverWorseThanRtnOnProxyError) {
  for (const char* name : {"int4_g128", "int3_g128", "nvfp4"}) {
    for (uint64_t seed : {1, 2, 3, 4}) {
      for (bool act_order : {false, true}) {
        SCOPED_TRACE(::testing::Message() << name << " seed " << seed << " act_order " << act_order);
        Problem p = least_squares(16, 320, seed);
        const BlockFormat& f = named_format(name);
        GptqOptions o;
        o.act_order = act_order;
        GptqStats stats;
        auto g = quantize_gptq(f, p.w.data(), p.rows, p.cols, p.h, o, &stats);
        auto r = quantize_rtn(f, p.w.data(), p.rows, p.cols, {});
        ASSERT_TRUE(g.ok() && r.ok());
        const double gptq = hessian_proxy_error(p.w.data(), dequantized(*g).data(), p.rows, p.cols, p.h);
        const double rtn = hessian_proxy_error(p.w.data(), dequantized(*r).data(), p.rows, p.cols, p.h);
        EXPECT_DOUBLE_EQ(stats.proxy_error, gptq);
        EXPECT_EQ(stats.dead_columns, 0);
        EXPECT_LT(gptq, rtn);
      }
    }
  }
}

TEST(QuantGptq, DeadColumnsAreZeroedNotNan) {
  Problem p = least_squares(8, 130, 21);
  for (int64_t dead : {0, 77, 129}) {
    for (int64_t k = 0; k < p.cols; ++k) {
      p.h[dead * p.cols + k] = 0.0;
      p.h[k * p.cols + dead] = 0.0;
    }
  }
  for (const char* name : {"int4_g128", "int3_g128"}) {
    for (bool act_order : {false, true}) {
      GptqOptions o;
      o.act_order = act_order;
      GptqStats stats;
      auto q = quantize_gptq(named_format(name), p.w.data(), p.rows, p.cols, p.h, o, &stats);
      ASSERT_TRUE(q.ok()) << q.status().message();
      EXPECT_EQ(stats.dead_columns, 3);
      EXPECT_TRUE(std::isfinite(stats.proxy_error));
      const std::vector<float> back = dequantized(*q);
      for (float v : back) ASSERT_TRUE(std::isfinite(v));
      if (std::string(name) == "int4_g128") {
        for (int64_t r = 0; r < p.rows; ++r) EXPECT_EQ(back[r * p.cols + 77], 0.0f);
      }
    }
  }
}

TEST(QuantGptq, RejectsBadInputs) {
  Problem p = least_squares(4, 16, 2);
  const BlockFormat& f = named_format("int4_g128");
  std::vector<double> short_h(10, 1.0);
  EXPECT_FALSE(quantize_gptq(f, p.w.data(), 4, 16, short_h, {}).ok());
  GptqOptions bad;
  bad.block_size = 0;
  EXPECT_FALSE(quantize_gptq(f, p.w.data(), 4, 16, p.h, bad).ok());
  // Indefinite H, no damping: the Cholesky factorisation fails with a message.
  std::vector<double> indefinite(16 * 16, 0.0);
  for (int j = 0; j < 16; ++j) indefinite[j * 16 + j] = j == 3 ? -1.0 : 1.0;
  GptqOptions no_damp;
  no_damp.damp_percent = 0.0f;
  auto q = quantize_gptq(f, p.w.data(), 4, 16, indefinite, no_damp);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("positive definite"), std::string::npos) << q.status().message();
}

}  // namespace
}  // namespace lowbit
