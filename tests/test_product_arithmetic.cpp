// ppl --arith bf16|fp8|lmul at the model level (model/product_arithmetic.h): a
// model's outputs have the same bits at every ISA level, stay near the FP32
// model's in the order of the arithmetics' precision, and a model whose linears
// are not FP32 matrices is refused with the linear's name.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

#include "eval/synthetic_model.h"
#include "model/approx_linear.h"
#include "model/attention_approx.h"
#include "model/product_arithmetic.h"
#include "test_util.h"

namespace lowbit {
namespace {

std::vector<Isa> levels() {
  std::vector<Isa> out;
  const CpuFeatures cpu = detect_cpu_features();
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    if (isa_supported(isa, cpu) && isa <= active_isa()) out.push_back(isa);
  }
  return out;
}

ModelConfig small_config() {
  return shape_config("dim=64,layers=2,heads=8,kv_heads=4,ffn=172,vocab=512").value();
}

// Logits [n, vocab] of a synthetic FP32 model under `arith` (none: FP32).
std::vector<float> logits(const std::optional<ProductArithmetic>& arith, ThreadPool& pool) {
  auto fp32 = [](const std::string&) -> Expected<std::string> { return std::string("fp32"); };
  auto built = build_synthetic_model(small_config(), fp32, 5, pool);
  EXPECT_TRUE(built.ok()) << built.status().message();
  LlamaModel& model = built->model;
  if (arith) {
    const Status s = attach_product_arithmetic(model, *arith);
    EXPECT_TRUE(s.ok()) << s.message();
  }
  std::vector<int32_t> tokens(70);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37 + 11) % 512);
  std::unique_ptr<KvCache> cache = model.make_fp32_cache(static_cast<int>(tokens.size()));
  std::vector<float> out(tokens.size() * 512);
  // Two calls, so the second block of queries attends to positions already cached.
  const int first = 40;
  EXPECT_TRUE(model.forward(tokens.data(), first, 0, *cache, out.data(), pool).ok());
  EXPECT_TRUE(model.forward(tokens.data() + first, static_cast<int>(tokens.size()) - first, first, *cache,
                            out.data() + first * 512, pool)
                  .ok());
  return out;
}

double relative_rms(const std::vector<float>& a, const std::vector<float>& ref) {
  double d = 0.0, r = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (a[i] - ref[i]) * (a[i] - ref[i]);
    r += ref[i] * ref[i];
  }
  return std::sqrt(d / r);
}

TEST(ProductArithmetic, SameBitsAtEveryLevelAndOrderedByProductError) {
  // Each arithmetic gives the same logits at every ISA level. Their distance from the
  // FP32 logits follows the per-product relative error (lmul.h, approx_gemm.h): BF16
  // operands ≤ 2^-8, FP8 E4M3 ≤ 2^-3, L-Mul on 3-bit operands ≤ 2^-3 from the operands
  // plus its own [-3.2%, +12.5%]; so BF16 < FP8 < L-Mul(3), and BF16 < L-Mul(23)
  // (whose products err by up to 7.3%). Every distance is above zero (the arithmetic
  // was applied) and below 1 (the model still computes its function).
  ThreadPool pool(2);
  const std::vector<float> fp32 = logits(std::nullopt, pool);
  struct Case {
    ProductKind kind;
    int m;
  };
  const Case cases[] = {{ProductKind::kBf16, 3}, {ProductKind::kFp8E4m3, 3}, {ProductKind::kLmul, 3},
                        {ProductKind::kLmul, 23}};
  double rel[4] = {};
  for (int i = 0; i < 4; ++i) {
    const Case& c = cases[i];
    std::vector<float> first;
    for (Isa isa : levels()) {
      if (c.kind == ProductKind::kBf16 && isa != Isa::kGeneric && isa < Isa::kAvx512Bf16) continue;
      const std::vector<float> got = logits(ProductArithmetic{c.kind, c.m, isa}, pool);
      if (first.empty()) {
        first = got;
        rel[i] = relative_rms(got, fp32);
        EXPECT_GT(rel[i], 0.0) << static_cast<int>(c.kind) << " m=" << c.m;
        EXPECT_LT(rel[i], 1.0) << static_cast<int>(c.kind) << " m=" << c.m;
        continue;
      }
      if (c.kind == ProductKind::kBf16) continue;  // gemm_bf16's own tests hold its levels to the reference
      ASSERT_EQ(std::memcmp(got.data(), first.data(), got.size() * sizeof(float)), 0)
          << static_cast<int>(c.kind) << " m=" << c.m << " at " << isa_name(isa);
    }
  }
  EXPECT_LT(rel[0], rel[1]) << "BF16 against FP8";
  EXPECT_LT(rel[1], rel[2]) << "FP8 against L-Mul(3)";
  EXPECT_LT(rel[0], rel[3]) << "BF16 against L-Mul(23)";
}

TEST(ProductArithmetic, ApproxLinearIsTheReferenceDotPlusBias) {
  Matrix w;
  w.rows = 7;
  w.cols = 45;
  w.data = testing::gaussian(static_cast<size_t>(w.rows * w.cols), 3, 0.1f);
  w.bias = testing::gaussian(static_cast<size_t>(w.rows), 4);
  const std::vector<float> x = testing::gaussian(static_cast<size_t>(3 * w.cols), 5);
  const ApproxArith arith{ApproxProduct::kLmul, 3};
  ThreadPool pool(2);
  for (Isa isa : levels()) {
    const ApproxLinear layer(w, arith, isa);
    std::vector<float> y(static_cast<size_t>(3 * w.rows));
    layer.forward(x.data(), 3, y.data(), pool);
    for (int64_t t = 0; t < 3; ++t) {
      for (int64_t o = 0; o < w.rows; ++o) {
        std::vector<uint32_t> xr(static_cast<size_t>(w.cols)), wr(static_cast<size_t>(w.cols));
        approx_round_rows(arith, x.data() + t * w.cols, 1, w.cols, w.cols, xr.data());
        approx_round_rows(arith, w.data.data() + o * w.cols, 1, w.cols, w.cols, wr.data());
        const float expected = lmul_dot_reference(xr.data(), wr.data(), w.cols, 3) + w.bias[o];
        EXPECT_EQ(std::bit_cast<uint32_t>(y[t * w.rows + o]), std::bit_cast<uint32_t>(expected)) << isa_name(isa);
      }
    }
  }
}

TEST(ProductArithmetic, RefusesLinearsThatAreNotFp32Matrices) {
  ThreadPool pool(2);
  auto format_for = [](const std::string& name) -> Expected<std::string> {
    return std::string(name == "layers.1.up_proj" ? "int8_pc" : "fp32");
  };
  auto built = build_synthetic_model(small_config(), format_for, 5, pool);
  ASSERT_TRUE(built.ok()) << built.status().message();
  const Status s = attach_product_arithmetic(built->model, {ProductKind::kLmul, 3, Isa::kGeneric});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("linear 'layers.1.up_proj'"), std::string::npos) << s.message();
  const Status m = attach_product_arithmetic(built->model, {ProductKind::kLmul, 24, Isa::kGeneric});
  EXPECT_NE(m.message().find("L-Mul mantissa bits 24: expected 1 to 23"), std::string::npos) << m.message();
  EXPECT_NE(find_product_kind("lmul"), nullptr);
  EXPECT_EQ(find_product_kind("exact"), nullptr);
}

}  // namespace
}  // namespace lowbit
