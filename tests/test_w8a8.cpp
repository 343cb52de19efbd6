// W8A8 kernels (kernels/w8a8.h): activation quantization known answers, every
// ISA bit-identical to the exact integer reference over awkward shapes, and the
// documented bound against the FP32 product.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/kernel_table.h"
#include "kernels/w8a8.h"
#include "model/packed_convert.h"
#include "quant/quantized_weight.h"
#include "test_int8_act_util.h"
#include "test_quant_util.h"

namespace lowbit {
namespace {

using testing::gaussian;  // [rows, cols] N(0, sigma²), seeded

PackedMatrix int8_weight(int64_t rows, int64_t cols, uint64_t seed) {
  const std::vector<float> w = gaussian(rows, cols, seed, 0.05f);
  QuantizedWeight q;
  q.format = "int8_pc";
  q.tensor = std::move(quantize_matrix("int8_pc", w.data(), rows, cols)).value();
  return std::move(pack_quantized_weight(q)).value();
}

TEST(W8A8, ActivationsRoundHalfToEvenPerToken) {
  // Token 0: amax 127 so s = 1; token 1: all zero.
  const std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, 127.0f, -3.25f, 0, 0, 0, 0, 0, 0};
  Int8Activations a;
  quantize_activations_int8(x.data(), 2, 6, 32, a);
  ASSERT_EQ(a.u8.size(), 64u);
  EXPECT_EQ(a.scale[0], 1.0f);
  EXPECT_EQ(a.scale[1], 0.0f);
  const int want[6] = {0, 2, 2, 0, 127, -3};
  for (int c = 0; c < 6; ++c) EXPECT_EQ(static_cast<int>(a.u8[c]) - 128, want[c]) << c;
  for (int c = 6; c < 32; ++c) EXPECT_EQ(a.u8[c], 128) << "padding " << c;
  for (int c = 0; c < 32; ++c) EXPECT_EQ(a.u8[32 + c], 128) << "zero token " << c;
}

struct Variant {
  W8A8Kernels k;
  const char* name;
};
// The table's W8A8 kernels of every level this CPU runs (generic, AVX2, AVX-VNNI, AVX-512 VNNI; NEON dotprod, i8mm).
std::vector<Variant> supported_variants() {
  const PackedMatrix w = int8_weight(1, 32, 1);
  std::vector<Variant> out;
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512Vnni, Isa::kNeonDotprod, Isa::kNeonI8mm}) {
    if (!isa_supported(isa, detect_cpu_features())) continue;
    const LinearKernel* e = find_linear_kernel(w, ActFormat::kInt8, isa);
    out.push_back({e->w8a8, e->name});
  }
  return out;
}

TEST(W8A8, EachLevelPicksItsKernels) {
  const PackedMatrix w = int8_weight(1, 32, 1);
  auto name = [&](Isa isa) { return std::string(find_linear_kernel(w, ActFormat::kInt8, isa)->name); };
  EXPECT_EQ(name(Isa::kGeneric), "w8a8/generic");
#ifdef LOWBIT_ARCH_ARM64
  EXPECT_EQ(name(Isa::kNeon), "w8a8/generic");  // SDOT needs dotprod
  EXPECT_EQ(name(Isa::kNeonDotprod), "w8a8/neon-dotprod");
  EXPECT_EQ(name(Isa::kNeonI8mm), "w8a8/neon-i8mm");
#endif
#ifdef LOWBIT_ARCH_X86
  EXPECT_EQ(name(Isa::kAvx2), "w8a8/avx2");
  // AVX-512 without VNNI runs the 256-bit kernel: the AVX-VNNI one where the CPU has it.
  const char* vex = detect_cpu_features().avx_vnni ? "w8a8/avxvnni" : "w8a8/avx2";
  EXPECT_EQ(name(Isa::kAvxVnni), vex);
  EXPECT_EQ(name(Isa::kAvx512), vex);
  EXPECT_EQ(name(Isa::kAvx512Vnni), "w8a8/avx512vnni");
  EXPECT_EQ(name(Isa::kAmx), "w8a8/amx+avx512vnni");
#endif
}

TEST(W8A8, EveryIsaIsBitIdenticalToTheIntegerReference) {
  const std::vector<Variant> variants = supported_variants();
  for (int64_t rows : {1, 3, 17, 33, 255}) {
    for (int64_t cols : {1, 3, 17, 31, 32, 33, 255, 4097}) {
      const PackedMatrix w = int8_weight(rows, cols, 100 + rows + cols);
      const std::vector<int32_t> rowsum = int8_row_sums(w);
      for (int64_t tokens : {1, 3, 5}) {
        const std::vector<float> x = gaussian(tokens, cols, 7 + cols, 1.0f);
        Int8Activations a;
        quantize_activations_int8(x.data(), tokens, cols, w.cols_padded, a);
        std::vector<float> want(static_cast<size_t>(tokens * rows));
        w8a8_reference(w, rowsum, a, 0, rows, want.data(), rows);
        for (const Variant& v : variants) {
          const W8A8Kernels& k = v.k;
          SCOPED_TRACE(::testing::Message() << v.name << " [" << rows << ", " << cols << "] x " << tokens);
          std::vector<float> got(static_cast<size_t>(tokens * rows), NAN);
          const int64_t split = rows / 2;  // two row ranges, as the thread pool splits them
          k.gemm(w, rowsum, a, 0, split, got.data(), rows);
          k.gemm(w, rowsum, a, split, rows, got.data() + split, rows);
          for (size_t i = 0; i < got.size(); ++i) {
            ASSERT_EQ(got[i], want[i]) << "token " << i / rows << " row " << i % rows;
          }
        }
      }
    }
  }
}

// The largest products: weight codes -128 / 127 / -127 against activations
// +-127, so a pair of products reaches 2 * 128 * 127 in magnitude (a kernel
// multiplying u = q + 128 by w in saturating int16 pairs would clip here).
TEST(W8A8, ExtremeCodesAreExact) {
  const int64_t rows = 5, cols = 4097;
  PackedMatrix w;
  w.kind = PackedKind::kInt8Row;
  w.rows = rows;
  w.cols = cols;
  w.cols_padded = (cols + 31) / 32 * 32;
  w.codes.assign(static_cast<size_t>(rows * w.row_bytes()), 0);
  w.row_scales.assign(static_cast<size_t>(rows), 1.0f / 127.0f);
  const int8_t pattern[rows][2] = {{-128, -128}, {127, 127}, {-127, -127}, {-128, 127}, {127, -128}};
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) w.codes[r * w.row_bytes() + c] = static_cast<uint8_t>(pattern[r][c % 2]);
  }
  ASSERT_TRUE(w.validate().ok());
  const std::vector<int32_t> rowsum = int8_row_sums(w);
  const Int8Activations a = testing::extreme_int8_activations(cols, w.cols_padded);
  const int64_t tokens = a.tokens;
  ASSERT_EQ(a.u8[0], 255);
  ASSERT_EQ(a.u8[a.cols_padded], 1);
  std::vector<float> want(static_cast<size_t>(tokens * rows));
  w8a8_reference(w, rowsum, a, 0, rows, want.data(), rows);
  EXPECT_NEAR(want[0], -128.0 * cols / 127.0, 1e-2);  // 127 * -128 * cols * (1/127) * (1/127)
  for (const Variant& v : supported_variants()) {
    const W8A8Kernels& k = v.k;
    std::vector<float> got(want.size(), NAN);
    k.gemm(w, rowsum, a, 0, rows, got.data(), rows);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i], want[i]) << v.name << " token " << i / rows << " row " << i % rows;
    }
  }
}

TEST(W8A8, DiffersFromTheFp32ProductOnlyByActivationRounding) {
  const int64_t rows = 64, cols = 4097, tokens = 3;
  const PackedMatrix w = int8_weight(rows, cols, 5);
  const std::vector<int32_t> rowsum = int8_row_sums(w);
  const std::vector<float> x = gaussian(tokens, cols, 9, 1.0f);
  Int8Activations a;
  quantize_activations_int8(x.data(), tokens, cols, w.cols_padded, a);
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  find_linear_kernel(w, ActFormat::kInt8, active_isa())->w8a8.gemm(w, rowsum, a, 0, rows, y.data(), rows);
  double worst = 0.0;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double exact = 0.0, wabs = 0.0;
      for (int64_t c = 0; c < cols; ++c) {
        exact += static_cast<double>(packed_value(w, r, c)) * x[t * cols + c];
        wabs += std::fabs(static_cast<double>(packed_value(w, r, c)));
      }
      const double bound = a.scale[t] / 2.0 * wabs + 1e-5 * std::fabs(exact);
      worst = std::max(worst, std::fabs(y[t * rows + r] - exact) / bound);
    }
  }
  EXPECT_LE(worst, 1.0);
  // Random rounding errors add up like a random walk: far below the worst case.
  EXPECT_GT(worst, 0.001);
}

}  // namespace
}  // namespace lowbit
