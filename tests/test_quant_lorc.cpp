// LoRC with known answers: at full rank with FP32 factors W comes back to float
// precision; a residual that is exactly rank one is removed by rank one; the
// error does not grow with the rank; U and V carry equal scale (U = U_r Σ^½,
// V = Σ^½ V_rᵀ); factors in FP16/BF16 or a block format work.
#include <gtest/gtest.h>

#include <cmath>

#include "quant/quantizers.h"
#include "test_quant_util.h"

namespace lowbit {
namespace {

using testing::dequantized;
using testing::gaussian;
using testing::named_format;

TEST(QuantLorc, FullRankReconstructsW) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{48, 32}, {24, 40}}) {
    const std::vector<float> w = gaussian(rows, cols, 3);
    auto q = quantize_rtn(named_format("int3_g128"), w.data(), rows, cols, {});
    ASSERT_TRUE(q.ok());
    const int rank = static_cast<int>(std::min(rows, cols));
    ASSERT_TRUE(add_lowrank_correction(*q, w.data(), rank, kFp32Storage).ok());
    const auto worst = testing::worst_diff(dequantized(*q), w);
    EXPECT_LE(worst.diff, 1e-5 * testing::max_abs(w)) << rows << "x" << cols << " at " << worst.index;
  }
}

TEST(QuantLorc, RankOneResidualIsRemovedByRankOne) {
  // Integers in [-7, 7] (a ±7 in each row) plus a rank-one perturbation below
  // fp16's half-ulp of the scale 1 and below half a step: INT4 g128 rounds it
  // away, so the residual is the perturbation.
  const int64_t rows = 20, cols = 128;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float a = 1e-4f * static_cast<float>(r % 5 + 1), b = static_cast<float>((c * 13) % 7) - 3.0f;
      w[r * cols + c] = static_cast<float>((r * 31 + c * 17) % 13 - 6) + a * b;
    }
    w[r * cols] = 7.0f;
  }
  auto q = quantize_rtn(named_format("int4_g128"), w.data(), rows, cols, {});
  ASSERT_TRUE(q.ok());
  const double before = testing::worst_diff(dequantized(*q), w).diff;
  EXPECT_GT(before, 1e-3);
  ASSERT_TRUE(add_lowrank_correction(*q, w.data(), 1, kFp32Storage).ok());
  EXPECT_LE(testing::worst_diff(dequantized(*q), w).diff, 2e-6);
}

TEST(QuantLorc, ErrorDoesNotGrowWithRank) {
  const int64_t rows = 40, cols = 64;
  const std::vector<float> w = gaussian(rows, cols, 5);
  auto base = quantize_rtn(named_format("int2_g64"), w.data(), rows, cols, {});
  ASSERT_TRUE(base.ok());
  double previous = testing::sum_sq_diff(dequantized(*base), w);
  for (int rank = 1; rank <= 12; ++rank) {
    QuantizedWeight q = *base;
    ASSERT_TRUE(add_lowrank_correction(q, w.data(), rank, kFp32Storage).ok());
    const double e = testing::sum_sq_diff(dequantized(q), w);
    EXPECT_LE(e, previous * (1 + 1e-6)) << "rank " << rank;
    EXPECT_LT(e, previous) << "rank " << rank;
    previous = e;
  }
}

TEST(QuantLorc, FactorsAreBalancedAndStoredInTheChosenFormat) {
  const int64_t rows = 32, cols = 48;
  const std::vector<float> w = gaussian(rows, cols, 6);
  auto q = quantize_rtn(named_format("int3_g128"), w.data(), rows, cols, {});
  ASSERT_TRUE(q.ok());
  const double e0 = testing::sum_sq_diff(dequantized(*q), w);
  ASSERT_TRUE(add_lowrank_correction(*q, w.data(), 4, kFp32Storage).ok());
  std::vector<float> u(rows * 4), v(4 * cols);
  ASSERT_TRUE(dequantize_matrix(kFp32Storage, q->lowrank_u, u.data()).ok());
  ASSERT_TRUE(dequantize_matrix(kFp32Storage, q->lowrank_v, v.data()).ok());
  for (int j = 0; j < 4; ++j) {  // ‖U[:, j]‖ = ‖V[j, :]‖ = sqrt(σ_j)
    double nu = 0.0, nv = 0.0;
    for (int64_t r = 0; r < rows; ++r) nu += u[r * 4 + j] * u[r * 4 + j];
    for (int64_t c = 0; c < cols; ++c) nv += v[j * cols + c] * v[j * cols + c];
    EXPECT_NEAR(nu, nv, 1e-5 * nv) << j;
  }
  const double e_fp32 = testing::sum_sq_diff(dequantized(*q), w);
  for (const char* factors : {"fp16", "bf16", "int8_pc"}) {
    ASSERT_TRUE(add_lowrank_correction(*q, w.data(), 4, factors).ok()) << factors;
    EXPECT_EQ(q->lowrank_format, factors);
    EXPECT_EQ(q->rank, 4);
    const double e = testing::sum_sq_diff(dequantized(*q), w);
    EXPECT_LT(e, e0) << factors;
    EXPECT_NEAR(e, e_fp32, 0.02 * e_fp32) << factors;
  }
  ASSERT_TRUE(add_lowrank_correction(*q, w.data(), 0, "fp16").ok());
  EXPECT_EQ(q->rank, 0);
  EXPECT_EQ(testing::sum_sq_diff(dequantized(*q), w), e0);
  EXPECT_FALSE(add_lowrank_correction(*q, w.data(), 33, "fp16").ok());
  EXPECT_FALSE(add_lowrank_correction(*q, w.data(), 2, "no_such_format").ok());
}

}  // namespace
}  // namespace lowbit
