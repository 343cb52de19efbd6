// The vectorized exp, softmax and SwiGLU rows (kernels/exp_rows.h) against
// std::exp in double and against the reference rows.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/exp_rows.h"

namespace lowbit {
namespace {

std::vector<ExpRowOps> simd_ops() {
  std::vector<ExpRowOps> ops;
  if (isa_supported(Isa::kAvx512, detect_cpu_features())) ops.push_back(exp_row_ops_avx512());
  return ops;
}

TEST(ExpRows, ExpIsWithinFourUlpOfTheTrueValue) {
  const auto ops = simd_ops();
  if (ops.empty()) GTEST_SKIP() << "no AVX-512 on this CPU: only the reference exp runs";
  std::vector<float> x;
  for (double v = -103.0; v <= 88.7; v += 0.000731) x.push_back(static_cast<float>(v));
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 0.5f, -0.5f, 88.72f, -87.33f}) x.push_back(v);
  for (const ExpRowOps& op : ops) {
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
  for (const ExpRowOps& op : simd_ops()) {
    const float in[] = {-1e30f, -200.0f, 89.0f, 1e30f, std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
    float out[7];
    op.exp(in, out, 7);
    EXPECT_EQ(out[0], 0.0f);
    EXPECT_EQ(out[1], 0.0f);
    EXPECT_TRUE(std::isinf(out[2]));
    EXPECT_TRUE(std::isinf(out[3]));
    EXPECT_TRUE(std::isinf(out[4]));
    EXPECT_EQ(out[5], 0.0f);
    EXPECT_TRUE(std::isnan(out[6])) << op.name << ": NaN must propagate";
  }
}

TEST(ExpRows, SoftmaxAndSwigluMatchTheReference) {
  const ExpRowOps ref = exp_row_ops_generic();
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 4.0f);
  for (const ExpRowOps& op : simd_ops()) {
    for (int64_t n : {1, 3, 15, 16, 17, 255, 4097}) {
      std::vector<float> a(n), up(n);
      for (int64_t i = 0; i < n; ++i) {
        a[i] = d(rng);
        up[i] = d(rng);
      }
      std::vector<float> s_ref = a, s = a, g_ref = a, g = a;
      ref.softmax(s_ref.data(), n);
      op.softmax(s.data(), n);
      ref.swiglu(g_ref.data(), up.data(), n);
      op.swiglu(g.data(), up.data(), n);
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        sum += s[i];
        // exp within 4 ulp, the float lane sum over n terms: 1e-6 relative covers both for n <= 4097.
        ASSERT_NEAR(s[i], s_ref[i], 1e-6 * s_ref[i] + 1e-30) << op.name << " softmax n " << n << " i " << i;
        ASSERT_NEAR(g[i], g_ref[i], 1e-6 * std::abs(g_ref[i]) + 1e-30) << op.name << " swiglu n " << n << " i " << i;
      }
      EXPECT_NEAR(sum, 1.0, 1e-5) << op.name << " n " << n;
    }
  }
}

TEST(ExpRows, DispatchFollowsTheIsa) {
  EXPECT_STREQ(exp_row_ops(Isa::kGeneric).name, "exp/generic");
  EXPECT_STREQ(exp_row_ops(Isa::kAvx2).name, "exp/generic");
  EXPECT_STREQ(exp_row_ops(Isa::kAvx512).name, "exp/avx512");
}

}  // namespace
}  // namespace lowbit
