// BF16 products with FP32 sums (kernels/gemm_bf16.h): the rounding against golden
// cases and between its variants bit for bit; the product against the scalar
// reference micro-kernel and against FP64 within the bound of the header; the
// panel forms (rows, columns, XᵀX's upper triangle, a column limit) against each
// other; the thread count does not change a bit.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/gemm_bf16.h"
#include "test_util.h"

namespace lowbit {
namespace {

constexpr double kU = 0x1.0p-24;

// The generic level and, where the CPU has it, the AVX512_BF16 one.
std::vector<Isa> bf16_levels() {
  std::vector<Isa> levels{Isa::kGeneric};
  if (isa_supported(Isa::kAvx512Bf16, detect_cpu_features())) levels.push_back(Isa::kAvx512Bf16);
  return levels;
}

using testing::gaussian;

TEST(Bf16Rounding, GoldenCases) {
  auto r = [](uint32_t bits) { return bf16_from_float(std::bit_cast<float>(bits)); };
  EXPECT_EQ(r(0x3f800000u), 0x3f80u);  // 1.0
  EXPECT_EQ(r(0x3f808000u), 0x3f80u);  // tie, even below: stays
  EXPECT_EQ(r(0x3f818000u), 0x3f82u);  // tie, odd below: up to even
  EXPECT_EQ(r(0x3f808001u), 0x3f81u);  // above the tie: up
  EXPECT_EQ(r(0x3f807fffu), 0x3f80u);  // below the tie: down
  EXPECT_EQ(r(0xbf818000u), 0xbf82u);  // negative tie to even
  EXPECT_EQ(r(0x7f7fffffu), 0x7f80u);  // FLT_MAX rounds to +inf
  EXPECT_EQ(r(0x7f800000u), 0x7f80u);  // +inf
  EXPECT_EQ(r(0xff800000u), 0xff80u);  // -inf
  EXPECT_EQ(r(0x7f800001u), 0x7fc0u);  // signalling NaN made quiet, not rounded to inf
  EXPECT_EQ(r(0xffc12345u), 0xffc1u);  // quiet NaN keeps sign and top payload
  EXPECT_EQ(r(0x00000001u), 0x0000u);  // smallest subnormal flushed
  EXPECT_EQ(r(0x807fffffu), 0x8000u);  // largest negative subnormal flushed to -0
  EXPECT_EQ(r(0x00800000u), 0x0080u);  // FLT_MIN kept
  EXPECT_EQ(float_from_bf16(0x4049u), 3.140625f);
}

// Bit patterns over every class: normals, ties, subnormals, zeros, infinities, NaNs.
std::vector<float> hostile_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits = rng();
    switch (i % 7) {
      case 0: bits = (bits & 0x807fffffu); break;               // subnormal or zero
      case 1: bits = (bits & 0xffff0000u) | 0x8000u; break;     // exact tie
      case 2: bits = (bits & 0x807fffffu) | 0x7f800000u; break;  // inf or NaN
      default: break;
    }
    v[i] = std::bit_cast<float>(bits);
  }
  return v;
}

TEST(Bf16Rounding, EveryVariantGivesTheReferenceBits) {
  const std::vector<Isa> levels = bf16_levels();
  for (int64_t k : {1, 2, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255}) {
    const int64_t rows = 3;
    const std::vector<float> x = hostile_floats(static_cast<size_t>(rows * (k + 5)), static_cast<uint32_t>(k));
    std::vector<uint32_t> expected;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t p = 0; p < (k + 1) / 2; ++p) {
        const float lo = x[r * (k + 5) + 2 * p], hi = 2 * p + 1 < k ? x[r * (k + 5) + 2 * p + 1] : 0.0f;
        expected.push_back(bf16_from_float(lo) | (static_cast<uint32_t>(bf16_from_float(hi)) << 16));
      }
    }
    for (Isa isa : levels) {
      std::vector<uint32_t> got;
      const Bf16Rows a = round_rows_bf16(x.data(), rows, k, k + 5, got, isa);
      ASSERT_EQ(a.pairs, (k + 1) / 2);
      got.resize(expected.size());
      EXPECT_EQ(got, expected) << "k=" << k << " at " << isa_name(isa);
    }
    // Columns: the same floats read as [k, 3 + 40] column by column, every level.
    const int64_t n = 43, ld = 45;
    const std::vector<float> b = hostile_floats(static_cast<size_t>(k * ld), static_cast<uint32_t>(k + 100));
    Bf16Panels ref;
    pack_bf16_panels_from_columns(b.data(), k, n, ld, ref, Isa::kGeneric);
    for (Isa isa : levels) {
      Bf16Panels got;
      pack_bf16_panels_from_columns(b.data(), k, n, ld, got, isa);
      EXPECT_EQ(got.data, ref.data) << "columns, k=" << k << " at " << isa_name(isa);
    }
    for (int64_t i = 0; i < n; ++i) {  // spot the layout: B[i, 2p + 1] in the high half
      const int64_t p = (k - 1) / 2;
      const uint32_t pair = ref.panel(i / 32)[p * 32 + i % 32];
      EXPECT_EQ(pair & 0xffffu, bf16_from_float(b[2 * p * ld + i]));
      if (2 * p + 1 < k) {
        EXPECT_EQ(pair >> 16, bf16_from_float(b[(2 * p + 1) * ld + i]));
      }
    }
  }
}

// C = A·Bᵀ of bf16-rounded operands in FP64, and Σ|a||b| for the bound.
struct Exact {
  std::vector<double> c, abs;
};
Exact exact_product(const std::vector<float>& a, const std::vector<float>& b, int64_t m, int64_t n, int64_t k) {
  Exact e{std::vector<double>(m * n), std::vector<double>(m * n)};
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0, s_abs = 0.0;
      for (int64_t t = 0; t < k; ++t) {
        const double p = static_cast<double>(float_from_bf16(bf16_from_float(a[i * k + t]))) *
                         float_from_bf16(bf16_from_float(b[j * k + t]));
        s += p;
        s_abs += std::fabs(p);
      }
      e.c[i * n + j] = s;
      e.abs[i * n + j] = s_abs;
    }
  }
  return e;
}

TEST(GemmBf16, EveryLevelWithinTheFp32SumBoundOfTheRoundedProduct) {
  ThreadPool pool(2);
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 7, 5}, {8, 32, 64}, {9, 33, 63},
                         {17, 65, 128}, {31, 31, 255}, {64, 96, 576}}) {
    const std::vector<float> a = gaussian(m * k, 1), b = gaussian(n * k, 2, 3.0f);
    const Exact e = exact_product(a, b, m, n, k);
    const double gamma = static_cast<double>(k) * kU;
    std::vector<float> ref_c;
    for (Isa isa : bf16_levels()) {
      std::vector<uint32_t> rows_buf;
      const Bf16Rows ra = round_rows_bf16(a.data(), m, k, k, rows_buf, isa);
      Bf16Panels pb;
      pack_bf16_panels_from_rows(b.data(), n, k, k, pb);
      std::vector<float> c(m * n, -1.0f);
      gemm_bf16(ra, pb, c.data(), n, {}, isa, &pool);
      double worst = 0.0;
      int64_t worst_at = 0;
      for (int64_t i = 0; i < m * n; ++i) {
        const double err = std::fabs(c[i] - e.c[i]) / (gamma * e.abs[i] + 1e-300);
        if (err > worst) worst = err, worst_at = i;
      }
      EXPECT_LE(worst, 1.0) << m << "x" << n << "x" << k << " at " << isa_name(isa) << ": worst element " << worst_at
                            << " " << c[worst_at] << " vs " << e.c[worst_at] << " (" << worst << " of γ_K Σ|ab|)";
      if (ref_c.empty()) {
        ref_c = c;
      } else {
        // Both sum in k order with the same FP32 additions: equal within 2γ_K Σ|ab|
        // whatever the hardware's pair order (each is within γ_K of the exact sum).
        for (int64_t i = 0; i < m * n; ++i) EXPECT_LE(std::fabs(c[i] - ref_c[i]), 2 * gamma * e.abs[i]) << i;
      }
    }
  }
}

TEST(GemmBf16, SmallIntegersGiveExactProducts) {
  // Integers below 256 are exact in BF16 and their sums below 2^24 exact in FP32.
  const int64_t m = 11, n = 37, k = 70;
  std::vector<float> a(m * k), b(n * k);
  for (int64_t i = 0; i < m * k; ++i) a[i] = static_cast<float>(static_cast<int>(i * 7 % 31) - 15);
  for (int64_t i = 0; i < n * k; ++i) b[i] = static_cast<float>(static_cast<int>(i * 5 % 23) - 11);
  for (Isa isa : bf16_levels()) {
    std::vector<uint32_t> buf;
    const Bf16Rows ra = round_rows_bf16(a.data(), m, k, k, buf, isa);
    Bf16Panels pb;
    pack_bf16_panels_from_rows(b.data(), n, k, k, pb);
    std::vector<float> c(m * n);
    gemm_bf16(ra, pb, c.data(), n, {.alpha = 0.5f}, isa, nullptr);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        int64_t s = 0;
        for (int64_t t = 0; t < k; ++t) s += static_cast<int64_t>(a[i * k + t]) * static_cast<int64_t>(b[j * k + t]);
        ASSERT_EQ(c[i * n + j], 0.5f * static_cast<float>(s)) << i << "," << j << " at " << isa_name(isa);
      }
    }
  }
}

TEST(GemmBf16, PanelFormsAgreeAndThreadsDoNotChangeBits) {
  // X [tokens, in]: XᵀX through panels_as_rows (upper triangle only) equals the
  // full product of the same panels, and the columns-packed B equals the rows-packed Bᵀ.
  const int64_t tokens = 77, in = 70;
  const std::vector<float> x = gaussian(tokens * in, 5);
  std::vector<float> xt(in * tokens);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < in; ++i) xt[i * tokens + t] = x[t * in + i];
  }
  for (Isa isa : bf16_levels()) {
    Bf16Panels cols, rows;
    pack_bf16_panels_from_columns(x.data(), tokens, in, in, cols, isa);
    pack_bf16_panels_from_rows(xt.data(), in, tokens, tokens, rows);
    EXPECT_EQ(cols.data, rows.data) << isa_name(isa);
    const Bf16Rows a = panels_as_rows(cols);
    std::vector<float> full(in * in), upper(in * in, 0.0f), upper_1(in * in, 0.0f);
    ThreadPool pool(2);
    gemm_bf16(a, cols, full.data(), in, {}, isa, &pool);
    gemm_bf16(a, cols, upper.data(), in, {.upper_only = true}, isa, &pool);
    gemm_bf16(a, cols, upper_1.data(), in, {.upper_only = true}, isa, nullptr);
    EXPECT_EQ(upper, upper_1) << "threads changed bits at " << isa_name(isa);
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t j = i; j < in; ++j) ASSERT_EQ(upper[i * in + j], full[i * in + j]) << i << "," << j;
      for (int64_t j = 0; j < i; ++j) EXPECT_EQ(full[i * in + j], full[j * in + i]) << "symmetric " << i << "," << j;
    }
    // A column limit and accumulation: C += the first 40 columns only.
    std::vector<float> acc(in * in, 1.0f);
    gemm_bf16(a, cols, acc.data(), in, {.cols = 40, .accumulate = true}, isa, &pool);
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t j = 0; j < in; ++j) {
        ASSERT_EQ(acc[i * in + j], j < 40 ? 1.0f + full[i * in + j] : 1.0f) << i << "," << j;
      }
    }
  }
}

TEST(GemmBf16, UpperTriangleDealtToAnyThreadCount) {
  // XᵀX's panels are dealt to threads in rounds whose order alternates (gemm_bf16.cpp):
  // every panel count and thread count gives the single-thread bits, every element
  // of the upper triangle written.
  for (int64_t in : {31, 33, 70, 200, 257}) {
    const int64_t tokens = 23;
    const std::vector<float> x = gaussian(tokens * in, static_cast<uint32_t>(in));
    for (Isa isa : bf16_levels()) {
      Bf16Panels cols;
      pack_bf16_panels_from_columns(x.data(), tokens, in, in, cols, isa);
      const Bf16Rows a = panels_as_rows(cols);
      std::vector<float> one(in * in, -1.0f);
      gemm_bf16(a, cols, one.data(), in, {.upper_only = true}, isa, nullptr);
      for (int64_t i = 0; i < in; ++i) {
        for (int64_t j = i; j < in; ++j) ASSERT_NE(one[i * in + j], -1.0f) << "unwritten " << i << "," << j;
      }
      for (int threads : {2, 3, 4}) {
        ThreadPool pool(threads);
        std::vector<float> many(in * in, -1.0f);
        gemm_bf16(a, cols, many.data(), in, {.upper_only = true}, isa, &pool);
        for (int64_t i = 0; i < in; ++i) {
          for (int64_t j = i; j < in; ++j) {
            ASSERT_EQ(many[i * in + j], one[i * in + j]) << in << " wide, " << threads << " threads, " << i << ","
                                                         << j << " at " << isa_name(isa);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
