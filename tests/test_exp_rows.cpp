// The exp, softmax and SwiGLU rows (kernels/exp_rows.h), every variant this CPU
// runs, against std::exp and the softmax / SwiGLU computed in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/exp_rows.h"

namespace lowbit {
namespace {

constexpr double kU = 0x1.0p-24;  // unit roundoff of float

struct ExpKernel {
  ExpRowOps ops;
  // The float partial sums its softmax keeps (0: it sums in double). A sum of n
  // positive terms in L lanes, each lane ⌈n / L⌉ terms, then a tree of log2 L
  // additions, is within (⌈n / L⌉ + log2 L)·u relative.
  int sum_lanes = 0;
};

// The generic rows (std::exp: the production path without AVX2) and each ISA
// variant the CPU supports, whatever LOWBIT_ISA selects for the forward pass.
std::vector<ExpKernel> exp_kernels() {
  std::vector<ExpKernel> kernels{{exp_row_ops_generic(), 0}};
  if (isa_supported(Isa::kAvx2, detect_cpu_features())) kernels.push_back({exp_row_ops_avx2(), 8});
  if (isa_supported(Isa::kAvx512, detect_cpu_features())) kernels.push_back({exp_row_ops_avx512(), 16});
  return kernels;
}

double sum_error(const ExpKernel& k, int64_t n) {
  if (k.sum_lanes == 0) return 0.0;
  return (static_cast<double>((n + k.sum_lanes - 1) / k.sum_lanes) + std::log2(k.sum_lanes)) * kU;
}

TEST(ExpRows, ExpIsWithinFourUlpOfTheTrueValue) {
  const std::vector<ExpKernel> kernels = exp_kernels();
  ASSERT_FALSE(kernels.empty()) << "no exp kernel to test";
  std::vector<float> x;
  for (double v = -103.0; v <= 88.7; v += 0.000731) x.push_back(static_cast<float>(v));
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 0.5f, -0.5f, 88.72f, -87.33f}) x.push_back(v);
  for (const ExpKernel& k : kernels) {
    const ExpRowOps& op = k.ops;
    std::vector<float> out(x.size());
    op.exp(x.data(), out.data(), static_cast<int64_t>(x.size()));
    double worst_ulp = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double truth = std::exp(static_cast<double>(x[i]));
      if (truth < std::numeric_limits<float>::min()) {  // denormal results: absolute
        ASSERT_LE(std::abs(out[i] - truth), 4 * std::numeric_limits<float>::denorm_min()) << "x " << x[i];
        continue;
      }
      const double ulp = std::abs(out[i] - truth) / (truth * std::numeric_limits<float>::epsilon() / 2);
      worst_ulp = std::max(worst_ulp, ulp);
      ASSERT_LE(ulp, 4.0) << op.name << " x " << x[i] << " got " << out[i] << " want " << truth;
    }
    std::printf("%s: worst %.2f ulp over %zu points\n", op.name, worst_ulp, x.size());
  }
}

TEST(ExpRows, ExtremesAndNaN) {
  const std::vector<ExpKernel> kernels = exp_kernels();
  ASSERT_FALSE(kernels.empty()) << "no exp kernel to test";
  for (const ExpKernel& k : kernels) {
    const ExpRowOps& op = k.ops;
    const float in[] = {-1e30f, -200.0f, 89.0f, 1e30f, std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
    float out[7];
    op.exp(in, out, 7);
    EXPECT_EQ(out[0], 0.0f) << op.name;
    EXPECT_EQ(out[1], 0.0f) << op.name;
    EXPECT_TRUE(std::isinf(out[2])) << op.name;
    EXPECT_TRUE(std::isinf(out[3])) << op.name;
    EXPECT_TRUE(std::isinf(out[4])) << op.name;
    EXPECT_EQ(out[5], 0.0f) << op.name;
    EXPECT_TRUE(std::isnan(out[6])) << op.name << ": NaN must propagate";
  }
}

// Against the rows computed in double from the same float inputs, with bounds
// from the float operations each kernel does (u = 2⁻²⁴, first order in u):
//   softmax p_i = e^(x_i − m) / Σ_j e^(x_j − m), m = max x:
//     x_i − m rounded: e^(x_i − m) off by ≤ |x_i − m|·u relative; exp: 4 ulp = 4u;
//     the sum carries its terms' errors, Σ_j p_j·(|x_j − m| + 4)·u = (w + 4)·u with
//     w = Σ_j p_j |x_j − m|, plus its own rounding (sum_error); 1 / sum and the
//     product: 2u. So |p̂_i − p_i| ≤ (|x_i − m| + w + 10)·u·p_i + sum_error·p_i.
//   SwiGLU g / (1 + e^(−g)) · up: exp 4u, 1 + e 1u (the exp's error passes at most
//     whole), the division and the product 1u each: ≤ 7u relative.
// Measured: up to 0.63 of the softmax bound and 0.38 of the SwiGLU bound (generic
// and AVX-512). A softmax that leaves a lane out of its sum moves every p_i by that
// lane's share of the mass (about 1/16), far outside.
TEST(ExpRows, SoftmaxAndSwigluMatchTheReference) {
  const std::vector<ExpKernel> kernels = exp_kernels();
  ASSERT_FALSE(kernels.empty()) << "no exp kernel to test";
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 4.0f);
  for (const ExpKernel& k : kernels) {
    const ExpRowOps& op = k.ops;
    for (int64_t n : {1, 3, 15, 16, 17, 255, 4097}) {
      std::vector<float> a(n), up(n);
      for (int64_t i = 0; i < n; ++i) {
        a[i] = d(rng);
        up[i] = d(rng);
      }
      const double m = *std::max_element(a.begin(), a.end());
      std::vector<double> p(n), g(n);  // the reference rows in double
      double sum = 0.0;
      for (int64_t i = 0; i < n; ++i) sum += p[i] = std::exp(a[i] - m);
      double w = 0.0;  // Σ p_j |x_j − m|
      for (int64_t i = 0; i < n; ++i) {
        p[i] /= sum;
        w += p[i] * (m - a[i]);
        g[i] = a[i] / (1.0 + std::exp(-static_cast<double>(a[i]))) * up[i];
      }
      std::vector<float> s = a, sg = a;
      op.softmax(s.data(), n);
      op.swiglu(sg.data(), up.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double p_bound = ((m - a[i] + w + 10.0) * kU + sum_error(k, n)) * p[i];
        ASSERT_NEAR(s[i], p[i], p_bound) << op.name << " softmax n " << n << " i " << i;
        ASSERT_NEAR(sg[i], g[i], 7.0 * kU * std::abs(g[i])) << op.name << " swiglu n " << n << " i " << i;
      }
    }
  }
}

TEST(ExpRows, DispatchFollowsTheIsa) {
  EXPECT_STREQ(exp_row_ops(Isa::kGeneric).name, "exp/generic");
  EXPECT_STREQ(exp_row_ops(Isa::kAvx2).name, "exp/avx2");
  EXPECT_STREQ(exp_row_ops(Isa::kAvx512).name, "exp/avx512");
}

// The AVX2 exp applies 2^n as two exact factors where AVX-512 uses scalef; both
// round the same p·2^n once, so they agree bit for bit (NaN as NaN), denormal,
// zero and infinite results included. A factor split that rounded twice would
// differ in the last bit of denormal results.
TEST(ExpRows, Avx2ExpEqualsTheAvx512ExpBitForBit) {
  const CpuFeatures cpu = detect_cpu_features();
  if (!isa_supported(Isa::kAvx512, cpu)) GTEST_SKIP() << "no AVX-512 on this CPU: nothing to compare the AVX2 exp with";
  std::vector<float> x;
  for (double v = -110.0; v <= 90.0; v += 0.000917) x.push_back(static_cast<float>(v));
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, -87.33f, -103.97f, 88.7228f, 1e30f, -1e30f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN()}) {
    x.push_back(v);
  }
  const auto n = static_cast<int64_t>(x.size());
  std::vector<float> a(x.size()), b(x.size());
  exp_row_ops_avx2().exp(x.data(), a.data(), n);
  exp_row_ops_avx512().exp(x.data(), b.data(), n);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(b[i])) {
      EXPECT_TRUE(std::isnan(a[i])) << "x " << x[i];
      continue;
    }
    ASSERT_EQ(std::bit_cast<uint32_t>(a[i]), std::bit_cast<uint32_t>(b[i])) << "x " << x[i] << ": " << a[i] << " vs " << b[i];
  }
}

}  // namespace
}  // namespace lowbit
