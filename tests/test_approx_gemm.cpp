// The L-Mul and FP8 products (kernels/approx_gemm.h): every ISA level this CPU
// supports (up to LOWBIT_ISA) gives the scalar reference's bits, on awkward
// lengths, strides and hostile values; the sums stay within the error analysis;
// the dispatch table picks the highest row at or below the level.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/approx_gemm.h"
#include "kernels/lmul.h"
#include "test_util.h"

namespace lowbit {
namespace {

// generic, avx2, avx512 where supported and not above the active level (LOWBIT_ISA).
std::vector<Isa> levels() {
  std::vector<Isa> out;
  const CpuFeatures cpu = detect_cpu_features();
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (isa_supported(isa, cpu) && isa <= active_isa()) out.push_back(isa);
  }
  return out;
}

std::vector<ApproxArith> ariths() {
  return {{ApproxProduct::kLmul, 3}, {ApproxProduct::kLmul, 4}, {ApproxProduct::kLmul, 7},
          {ApproxProduct::kLmul, 23}, {ApproxProduct::kFp8E4m3, 3}};
}

// Gaussians with zeros of both signs, subnormals, and magnitudes whose L-Mul
// products overflow or flush; `specials` adds infinities and NaN.
std::vector<float> hostile(size_t n, uint32_t seed, bool specials) {
  std::vector<float> v = testing::gaussian(n, seed);
  std::mt19937 rng(seed + 7);
  for (size_t i = 0; i < n; ++i) {
    switch (rng() % 23) {
      case 0: v[i] = 0.0f; break;
      case 1: v[i] = -0.0f; break;
      case 2: v[i] = 1e-40f; break;
      case 3: v[i] = 0x1.8p70f; break;
      case 4: v[i] = -0x1.8p-70f; break;
      case 5: v[i] *= 1e-20f; break;
      case 6:
        if (specials) v[i] = (rng() % 2) ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
        break;
      default: break;
    }
  }
  return v;
}

TEST(ApproxGemm, TablePicksTheHighestRowAtOrBelowTheLevel) {
  EXPECT_STREQ(find_approx_dot_kernel(ApproxProduct::kLmul, Isa::kGeneric).name, "lmul/generic");
  EXPECT_STREQ(find_approx_dot_kernel(ApproxProduct::kLmul, Isa::kAvx2).name, "lmul/avx2");
  EXPECT_STREQ(find_approx_dot_kernel(ApproxProduct::kLmul, Isa::kAmx).name, "lmul/avx512");
  EXPECT_STREQ(find_approx_dot_kernel(ApproxProduct::kFp8E4m3, Isa::kAvx512Vnni).name, "fp8_e4m3/avx512");
  EXPECT_EQ(find_approx_dot_kernel(ApproxProduct::kFp8E4m3, Isa::kGeneric).dot, &fp8_dot_reference);
}

TEST(ApproxGemm, EveryLevelGivesTheReferenceBits) {
  for (const ApproxArith& arith : ariths()) {
    for (int64_t k : {1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 255, 577, 4097}) {
      const int64_t m = 5, n = 37, lda = k + 3, ldb = k + 5;  // strides put rows off alignment
      const bool specials = k == 33;
      const std::vector<float> a = hostile(static_cast<size_t>(m * lda), static_cast<uint32_t>(k), specials);
      const std::vector<float> b = hostile(static_cast<size_t>(n * ldb), static_cast<uint32_t>(k + 1000), specials);
      // Rounded into strided buffers (one element of slack before each).
      std::vector<uint32_t> ar(static_cast<size_t>(m * k + 1)), br(static_cast<size_t>(n * k + 1));
      approx_round_rows(arith, a.data(), m, k, lda, ar.data() + 1);
      approx_round_rows(arith, b.data(), n, k, ldb, br.data() + 1);
      const ApproxRows av{ar.data() + 1, m, k, k}, bv{br.data() + 1, n, k, k};
      std::vector<float> ref(static_cast<size_t>(m * n));
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          const ApproxDotFn dot = find_approx_dot_kernel(arith.product, Isa::kGeneric).dot;
          ref[i * n + j] = 0.5f * dot(av.row(i), bv.row(j), k, arith.lmul_mantissa);
        }
      }
      ThreadPool pool(2);
      for (Isa isa : levels()) {
        std::vector<float> got(ref.size());
        approx_gemm(arith, av, bv, got.data(), n, 0.5f, isa, &pool);
        for (size_t e = 0; e < ref.size(); ++e) {
          ASSERT_EQ(std::bit_cast<uint32_t>(got[e]), std::bit_cast<uint32_t>(ref[e]))
              << approx_product_name(arith.product) << " m=" << arith.lmul_mantissa << " k=" << k << " at "
              << isa_name(isa) << ", element " << e << ": " << got[e] << " vs " << ref[e];
        }
        // The kernel alone on finite rows (the gemm sends rows with inf/NaN to the reference).
        if (!specials) {
          const ApproxDotFn dot = find_approx_dot_kernel(arith.product, isa).dot;
          EXPECT_EQ(std::bit_cast<uint32_t>(0.5f * dot(av.row(1), bv.row(2), k, arith.lmul_mantissa)),
                    std::bit_cast<uint32_t>(ref[1 * n + 2]));
        }
      }
    }
  }
}

// |C − Σ ã·b̃| ≤ Σ |∘ − ã·b̃| + γ_K Σ |∘|: the products' range (lmul.h; 0 for FP8) and
// the FP32 sums, K·2^-24 relative, against double on the rounded operands.
TEST(ApproxGemm, SumsStayWithinTheErrorAnalysis) {
  for (const ApproxArith& arith : ariths()) {
    const int64_t m = 4, n = 9, k = 576;
    const std::vector<float> a = testing::gaussian(static_cast<size_t>(m * k), 11);
    const std::vector<float> b = testing::gaussian(static_cast<size_t>(n * k), 12, 0.05f);
    std::vector<uint32_t> ar(a.size()), br(b.size());
    approx_round_rows(arith, a.data(), m, k, k, ar.data());
    approx_round_rows(arith, b.data(), n, k, k, br.data());
    std::vector<float> c(static_cast<size_t>(m * n));
    approx_gemm(arith, {ar.data(), m, k, k}, {br.data(), n, k, k}, c.data(), n, 1.0f, active_isa(), nullptr);
    double rel = 0.0;
    if (arith.product == ApproxProduct::kLmul) {
      const LmulErrorBounds bounds = lmul_relative_error_bounds(arith.lmul_mantissa);
      rel = std::max(bounds.hi, -bounds.lo);
    }
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double exact = 0.0, abs = 0.0;
        for (int64_t p = 0; p < k; ++p) {
          const double x = std::bit_cast<float>(ar[i * k + p]), y = std::bit_cast<float>(br[j * k + p]);
          exact += x * y;
          abs += std::fabs(x * y);
        }
        const double bound = rel * abs + k * 0x1.0p-24 * (1.0 + rel) * abs;
        EXPECT_LE(std::fabs(c[i * n + j] - exact), bound) << i << "," << j;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
