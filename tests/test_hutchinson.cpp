// Hutchinson's trace estimator (quant/hutchinson.h) on matrices whose trace and
// estimator variance are known: a diagonal A (every probe exact), a dense
// symmetric A (mean within 4 standard errors of Var = 2(‖A‖_F² − Σ A_ii²) / p).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "quant/hutchinson.h"

namespace lowbit {
namespace {

// vᵀ A v for A [n, n] row-major, in double.
double quadratic(const std::vector<double>& a, const std::vector<float>& v) {
  const size_t n = v.size();
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) sum += v[i] * a[i * n + j] * v[j];
  }
  return sum;
}

TEST(Hutchinson, DiagonalMatrixIsExactFromEveryProbe) {
  const int n = 37;
  std::mt19937_64 rng(3);
  std::vector<double> d(n);  // [n] the diagonal
  double trace = 0.0;
  for (double& x : d) {
    x = std::normal_distribution<double>(0.5, 2.0)(rng);
    trace += x;
  }
  int calls = 0;
  const auto t = hutchinson_trace(n, 10, 1, [&](const std::vector<float>& v) -> Expected<double> {
    double q = 0.0;
    for (int i = 0; i < n; ++i) q += d[i] * v[i] * v[i];  // v_i² = 1 exactly
    EXPECT_EQ(q, trace) << "probe " << calls;
    ++calls;
    return q;
  });
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(calls, 10);
  EXPECT_EQ(t->probes, 10);
  EXPECT_EQ(t->mean, trace);
  EXPECT_EQ(t->stderr_of_mean, 0.0);
}

TEST(Hutchinson, DenseSymmetricWithinFourStandardErrors) {
  const int n = 64, probes = 4000;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> a(n * n);  // [n, n] symmetric: (G + Gᵀ) / 2 + 0.3 I
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j <= i; ++j) a[i * n + j] = a[j * n + i] = normal(rng) + (i == j ? 0.3 : 0.0);
  }
  double trace = 0.0, frobenius_sq = 0.0, diagonal_sq = 0.0;
  for (int i = 0; i < n; ++i) {
    trace += a[i * n + i];
    diagonal_sq += a[i * n + i] * a[i * n + i];
    for (int j = 0; j < n; ++j) frobenius_sq += a[i * n + j] * a[i * n + j];
  }
  const double sigma = std::sqrt(2.0 * (frobenius_sq - diagonal_sq) / probes);  // stderr of the mean
  const auto t = hutchinson_trace(n, probes, 2024, [&](const std::vector<float>& v) -> Expected<double> {
    return quadratic(a, v);
  });
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_NEAR(t->mean, trace, 4.0 * sigma);
  EXPECT_NEAR(t->stderr_of_mean, sigma, 0.2 * sigma);
}

TEST(Hutchinson, ProbesAreRademacherAndSeeded) {
  const int n = 130;  // crosses two 64-bit draws and ends inside a third
  auto record = [&](uint64_t seed, std::vector<std::vector<float>>& seen) {
    return hutchinson_trace(n, 100, seed, [&](const std::vector<float>& v) -> Expected<double> {
      seen.push_back(v);
      double s = 0.0;
      for (int i = 0; i < n; ++i) s += (i % 7) * v[i] * v[(i * 5 + 3) % n];
      return s;
    });
  };
  std::vector<std::vector<float>> first, second, other;
  const auto a = record(9, first), b = record(9, second), c = record(10, other);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(first, second);
  EXPECT_EQ(a->mean, b->mean);
  EXPECT_EQ(a->stderr_of_mean, b->stderr_of_mean);
  EXPECT_NE(first, other);
  int plus = 0, same_as_first_word = 0;
  for (const auto& v : first) {
    ASSERT_EQ(v.size(), size_t{n});
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(v[i] == 1.0f || v[i] == -1.0f) << v[i];
      plus += v[i] > 0;
      if (i >= 64 && i < 128) same_as_first_word += v[i] == v[i - 64];
    }
  }
  // 13000 fair signs: sd of the fraction 0.0044; 6400 pairs agree half the time.
  EXPECT_NEAR(plus / 13000.0, 0.5, 0.03);
  EXPECT_NEAR(same_as_first_word / 6400.0, 0.5, 0.03);
}

TEST(Hutchinson, QuadFormErrorIsPassedOn) {
  int calls = 0;
  const auto t = hutchinson_trace(8, 10, 1, [&](const std::vector<float>&) -> Expected<double> {
    if (calls++ == 3) return make_error("Hessian-vector product failed for layer {}", "blk.2");
    return 1.0;
  });
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(calls, 4);
  EXPECT_NE(t.status().message().find("probe 3"), std::string::npos) << t.status().message();
  EXPECT_NE(t.status().message().find("blk.2"), std::string::npos) << t.status().message();
}

TEST(Hutchinson, RefusesBadArguments) {
  const QuadraticForm one = [](const std::vector<float>&) -> Expected<double> { return 1.0; };
  EXPECT_FALSE(hutchinson_trace(8, 0, 1, one).ok());
  EXPECT_FALSE(hutchinson_trace(8, -1, 1, one).ok());
  EXPECT_FALSE(hutchinson_trace(0, 4, 1, one).ok());
  const QuadraticForm nan = [](const std::vector<float>&) -> Expected<double> { return std::nan(""); };
  EXPECT_FALSE(hutchinson_trace(8, 4, 1, nan).ok());
  const auto single = hutchinson_trace(8, 1, 1, one);
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(single->mean, 1.0);
  EXPECT_EQ(single->stderr_of_mean, 0.0);
}

}  // namespace
}  // namespace lowbit
