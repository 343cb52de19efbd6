// Hadamard matrices of order 2^k·m, the fast transform against the explicit
// matrix, and the rotations built on them (randomized Hadamard, random
// orthogonal fallback).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/cpu_features.h"
#include "kernels/hadamard.h"
#include "kernels/hadamard_row_kernels.h"
#include "kernels/orthogonal_rotation.h"

namespace lowbit {
namespace {

std::vector<float> gaussian(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// max |Q·Qᵀ − I| and max |Qᵀ·Q − I| for Q: [n, n] row-major.
double orthogonality_error(const std::vector<double>& q, int64_t n) {
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double rows = 0.0, cols = 0.0;
      for (int64_t k = 0; k < n; ++k) {
        rows += q[static_cast<size_t>(i * n + k)] * q[static_cast<size_t>(j * n + k)];
        cols += q[static_cast<size_t>(k * n + i)] * q[static_cast<size_t>(k * n + j)];
      }
      const double id = i == j ? 1.0 : 0.0;
      worst = std::max({worst, std::abs(rows - id), std::abs(cols - id)});
    }
  }
  return worst;
}

// y = x·M (transpose: x·Mᵀ) in double, x: [rows, n], M: [n, n].
std::vector<double> times(const std::vector<float>& x, int64_t rows, const std::vector<double>& m, int64_t n,
                          bool transpose) {
  std::vector<double> y(static_cast<size_t>(rows * n), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const double mij = transpose ? m[static_cast<size_t>(j * n + i)] : m[static_cast<size_t>(i * n + j)];
        acc += x[static_cast<size_t>(r * n + i)] * mij;
      }
      y[static_cast<size_t>(r * n + j)] = acc;
    }
  }
  return y;
}

TEST(Hadamard, BaseMatricesAreHadamard) {
  // Entries ±1 and H·Hᵀ = m·I exactly, for every Paley-built base order.
  for (int m : hadamard_base_orders()) {
    const std::vector<int8_t> h = hadamard_base_matrix(m);
    ASSERT_EQ(h.size(), static_cast<size_t>(m * m)) << m;
    for (int8_t v : h) ASSERT_TRUE(v == 1 || v == -1) << m;
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < m; ++j) {
        int dot = 0;
        for (int k = 0; k < m; ++k) dot += h[static_cast<size_t>(i * m + k)] * h[static_cast<size_t>(j * m + k)];
        ASSERT_EQ(dot, i == j ? m : 0) << "m=" << m << " rows " << i << "," << j;
      }
    }
  }
  EXPECT_TRUE(hadamard_base_matrix(16).empty());
  EXPECT_TRUE(hadamard_base_matrix(24).empty());  // 24 = 2·12 is not a base order
}

TEST(Hadamard, OrdersFactorAsPowerOfTwoTimesBase) {
  auto check = [](int64_t n, int64_t pow2, int base) {
    const auto o = hadamard_order(n);
    ASSERT_TRUE(o.has_value()) << n;
    EXPECT_EQ(o->pow2, pow2) << n;
    EXPECT_EQ(o->base, base) << n;
  };
  check(1, 1, 1);
  check(64, 64, 1);
  check(12, 1, 12);
  check(40, 2, 20);
  check(576, 16, 36);
  check(1536, 128, 12);
  check(52 * 8, 8, 52);
  check(60 * 2, 2, 60);
  for (int64_t n : {0, 3, 6, 10, 18, 24 + 1, 172, 11008, 100, 68}) EXPECT_FALSE(hadamard_supported(n)) << n;
  EXPECT_EQ(describe_hadamard_order(576), "576 = 16·36");
}

TEST(Hadamard, DenseMatrixIsOrthogonal) {
  for (int64_t n : {1, 2, 8, 12, 20, 28, 36, 40, 44, 52, 60, 96, 576}) {
    const std::vector<double> h = hadamard_matrix(n);
    ASSERT_EQ(h.size(), static_cast<size_t>(n * n));
    EXPECT_LT(orthogonality_error(h, n), 1e-6) << n;
  }
  // Sylvester order 4, by hand.
  const std::vector<double> h4 = hadamard_matrix(4);
  const double e[16] = {1, 1, 1, 1, 1, -1, 1, -1, 1, 1, -1, -1, 1, -1, -1, 1};
  for (int i = 0; i < 16; ++i) EXPECT_DOUBLE_EQ(h4[static_cast<size_t>(i)], 0.5 * e[i]) << i;
}

TEST(Hadamard, FastTransformEqualsExplicitMatrix) {
  // Every base order with several powers of two, including SmolLM2's 576 and 1536.
  std::vector<int64_t> sizes;
  for (int m : hadamard_base_orders()) {
    for (int64_t p : {1, 2, 4, 32}) sizes.push_back(p * m);
  }
  sizes.push_back(576);
  sizes.push_back(1536);
  sizes.push_back(256);
  const int64_t rows = 3;
  for (int64_t n : sizes) {
    const std::vector<double> h = hadamard_matrix(n);
    const std::vector<float> x = gaussian(static_cast<size_t>(rows * n), static_cast<uint64_t>(n));
    for (bool transpose : {false, true}) {
      std::vector<float> y = x;
      if (transpose) {
        hadamard_rows_transpose(y.data(), rows, n);
      } else {
        hadamard_rows(y.data(), rows, n);
      }
      const std::vector<double> ref = times(x, rows, h, n, transpose);
      // Error bound: each output sums n terms |x_i|/sqrt(n) in float: c·sqrt(n)·eps·max|x|.
      double worst = 0.0;
      size_t at = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        const double d = std::abs(y[i] - ref[i]);
        if (d > worst) worst = d, at = i;
      }
      EXPECT_LT(worst, 2e-5) << "n=" << n << " transpose=" << transpose << " worst at " << at;
    }
  }
}

TEST(Hadamard, PowerOfTwoMatchesFwhtBitForBit) {
  // The KV cache's fwht and the general transform agree exactly for m = 1, and
  // H_n (symmetric) is its own inverse.
  for (int n : {1, 2, 8, 64, 128}) {
    const std::vector<float> x = gaussian(static_cast<size_t>(5 * n), 3);
    std::vector<float> a = x, b = x;
    fwht_rows(a.data(), 5, n);
    hadamard_rows(b.data(), 5, n);
    EXPECT_EQ(a, b) << n;
    hadamard_rows(b.data(), 5, n);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(b[i], x[i], 1e-5) << n << " " << i;
  }
}

// The SIMD row kernels keep each element's multiplies and adds, in the generic
// kernel's order and each rounded on its own (hadamard_row_kernels.h), so they
// must give the same bits; sizes cover every base order, spans shorter than a
// vector (m = 1, small h) and the down_proj inputs of SmolLM2 (1536 = 128·12)
// and TinyLlama (5632 = 128·44).
TEST(HadamardKernels, EveryLevelGivesTheGenericFloatsBitForBit) {
  std::vector<Isa> simd;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (isa_supported(isa, detect_cpu_features())) simd.push_back(isa);
  }
  if (simd.empty()) GTEST_SKIP() << "no AVX2 on this CPU: only the generic Hadamard kernel runs here";
  std::vector<int64_t> sizes = {1, 2, 4, 8, 16, 32, 64, 128, 2048, 576, 1536, 5632};
  for (int m : hadamard_base_orders()) {
    for (int64_t pow2 : {1, 2, 8}) sizes.push_back(pow2 * m);
  }
  for (int64_t n : sizes) {
    ASSERT_TRUE(hadamard_supported(n)) << n;
    const std::vector<float> x = gaussian(static_cast<size_t>(3 * n), static_cast<uint64_t>(n));
    for (bool transpose : {false, true}) {
      std::vector<float> want = x;
      hadamard_rows_with(Isa::kGeneric, want.data(), 3, n, transpose);
      for (Isa isa : simd) {
        std::vector<float> got = x;
        hadamard_rows_with(isa, got.data(), 3, n, transpose);
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)))
            << hadamard_row_kernel_name(isa) << " n " << n << " transpose " << transpose;
      }
    }
    if (is_power_of_two(n)) {
      std::vector<float> want = x;
      fwht_rows_with(Isa::kGeneric, want.data(), 3, static_cast<int>(n));
      for (Isa isa : simd) {
        std::vector<float> got = x;
        fwht_rows_with(isa, got.data(), 3, static_cast<int>(n));
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)))
            << hadamard_row_kernel_name(isa) << " fwht n " << n;
      }
    }
  }
}

TEST(Hadamard, TransposeInvertsNonSymmetricOrders) {
  for (int64_t n : {12, 48, 576, 1536}) {
    const std::vector<float> x = gaussian(static_cast<size_t>(2 * n), 9);
    std::vector<float> y = x;
    hadamard_rows(y.data(), 2, n);
    hadamard_rows_transpose(y.data(), 2, n);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(y[i], x[i], 1e-5) << n << " " << i;
  }
}

TEST(Rotation, RandomizedHadamardIsOrthogonalAndMatchesItsMatrix) {
  for (int64_t n : {64, 96, 576}) {
    const Rotation q = Rotation::create(n, 42, true);
    EXPECT_EQ(q.kind(), Rotation::Kind::kHadamard);
    EXPECT_TRUE(q.note().empty());
    const std::vector<double> m = q.matrix();
    EXPECT_LT(orthogonality_error(m, n), 1e-6) << n;
    // The signs make it differ from the plain Hadamard matrix; the same seed gives the same Q.
    EXPECT_NE(m, hadamard_matrix(n));
    EXPECT_EQ(m, Rotation::create(n, 42, true).matrix());
    EXPECT_NE(m, Rotation::create(n, 43, true).matrix());
    const std::vector<float> x = gaussian(static_cast<size_t>(2 * n), 5);
    for (bool transpose : {false, true}) {
      std::vector<float> y = x;
      if (transpose) {
        q.apply_transpose(y.data(), 2);
      } else {
        q.apply(y.data(), 2);
      }
      const std::vector<double> ref = times(x, 2, m, n, transpose);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], 2e-5) << n << " " << transpose << " " << i;
    }
  }
}

TEST(Rotation, UnsupportedSizeFallsBackToRandomOrthogonal) {
  for (int64_t n : {3, 10, 172}) {
    const Rotation q = Rotation::create(n, 7, true);
    EXPECT_EQ(q.kind(), Rotation::Kind::kRandomOrthogonal) << n;
    EXPECT_NE(q.note().find("no Hadamard matrix of order " + std::to_string(n)), std::string::npos) << q.note();
    EXPECT_NE(q.describe().find("random orthogonal"), std::string::npos);
    const std::vector<double> m = q.matrix();
    EXPECT_LT(orthogonality_error(m, n), 1e-6) << n;
    EXPECT_EQ(m, Rotation::create(n, 7, true).matrix());  // deterministic
    const std::vector<float> x = gaussian(static_cast<size_t>(3 * n), 6);
    std::vector<float> y = x;
    q.apply(y.data(), 3);
    const std::vector<double> ref = times(x, 3, m, n, false);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-5) << n << " " << i;
    q.apply_transpose(y.data(), 3);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], x[i], 1e-5) << n << " " << i;
  }
  // The double-precision matrix itself is orthogonal to rounding, and not a permutation:
  // its entries spread (mean |Q_ij| ≈ sqrt(2/(π n)) for a Haar matrix).
  const int64_t n = 50;
  const std::vector<double> q = random_orthogonal_matrix(n, 1);
  EXPECT_LT(orthogonality_error(q, n), 1e-12);
  double mean_abs = 0.0;
  for (double v : q) mean_abs += std::abs(v);
  mean_abs /= static_cast<double>(n * n);
  EXPECT_NEAR(mean_abs, std::sqrt(2.0 / (M_PI * n)), 0.01);
}

TEST(Rotation, RandomSignsAreBalanced) {
  const std::vector<float> s = random_signs(10000, 3);
  double sum = 0.0;
  for (float v : s) {
    ASSERT_TRUE(v == 1.0f || v == -1.0f);
    sum += v;
  }
  EXPECT_LT(std::abs(sum), 300.0);  // ±3 sigma of a fair ±1 sum is ±300
}

}  // namespace
}  // namespace lowbit
