// The packed-kernel harness (kernels/packed_matrix.h): one table of ops x
// formats x ISA levels over awkward shapes, each variant against the scalar
// reference. Packing is checked against the block format's own dequantization;
// GEMV results against the double-precision reference within the FP32 error
// bound of the header (packed_gemv_bound), or for the fixed-point kernels that
// plus the quantization of x (lut4_fixed16.h); row dequantization within one
// rounding of the reference decode. Failures print the worst element.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "core/thread_pool.h"
#include "formats/block_format.h"
#include "kernels/int8_fixed16.h"
#include "kernels/kernel_table.h"
#include "kernels/lut4_fixed16.h"
#include "kernels/packed_matrix.h"
#include "model/packed_convert.h"
#include "model/packed_linear.h"
#include "model/quantized_linear.h"
#include "quant/quantized_weight.h"

namespace lowbit {
namespace {

const char* const kFormats[] = {"int4_g128", "int4_g128_asym", "mxfp4",    "mxfp4_up", "nvfp4",    "nf4_g64",
                                "fp4_g128_pow2", "int8_pc",     "fp8_e4m3", "fp16",     "bf16",     "int3_g128",
                                "int2_g64",      "int4_g32_asym", "int3_g64_asym", "int2_g32_asym"};
const int64_t kRows[] = {1, 3, 17, 33, 255};
const int64_t kCols[] = {1, 3, 17, 31, 32, 33, 255, 4097};

// Gaussian values with structure: an all-zero 16-column stretch in row 0, one
// large outlier per row, a negative ramp at the end.
std::vector<float> test_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = n(rng);
  for (int64_t c = 0; c < std::min<int64_t>(16, cols); ++c) w[c] = 0.0f;
  for (int64_t r = 0; r < rows; ++r) w[r * cols + (r * 7) % cols] = 0.9f * ((r % 2) ? 1.0f : -1.0f);
  for (int64_t c = std::max<int64_t>(0, cols - 8); c < cols; ++c) w[(rows - 1) * cols + c] = -0.01f * (cols - c);
  return w;
}

std::vector<float> test_vector(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = d(rng);
  return x;
}

QuantizedWeight quantized(const std::string& format, int64_t rows, int64_t cols, uint64_t seed) {
  const std::vector<float> w = test_matrix(rows, cols, seed);
  auto t = quantize_matrix(format, w.data(), rows, cols);
  EXPECT_TRUE(t.ok()) << t.status().message();
  QuantizedWeight q;
  q.format = format;
  q.tensor = std::move(t).value();
  return q;
}

PackedMatrix get_packed(const QuantizedWeight& q) {
  auto p = pack_quantized_weight(q);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return std::move(p).value();
}

// The ISA levels this CPU runs, each through the dispatch.
std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAllIsas) {
    if (isa == Isa::kAvxVnni || isa == Isa::kAmx) continue;  // no FP32 rows of their own
    if (isa_supported(isa, detect_cpu_features())) out.push_back(isa);
  }
  return out;
}

TEST(PackedKernels, PackingMatchesTheBlockFormatReference) {
  for (const char* format : kFormats) {
    for (int64_t rows : {3, 17}) {
      for (int64_t cols : kCols) {
        SCOPED_TRACE(testing::Message() << format << " [" << rows << ", " << cols << "]");
        const QuantizedWeight q = quantized(format, rows, cols, 7);
        ASSERT_EQ(packed_unsupported_reason(q), "");
        auto p = pack_quantized_weight(q);
        ASSERT_TRUE(p.ok()) << p.status().message();
        std::vector<float> want(static_cast<size_t>(rows * cols));
        ASSERT_TRUE(dequantize_weight(q, want.data()).ok());
        // NVFP4 multiplies the tensor scale last, the block format first: one rounding apart.
        const double rel = p->tensor_scale != 1.0f ? 0x1.0p-23 : 0.0;
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c) {
            const float got = packed_value(*p, r, c), w = want[r * cols + c];
            ASSERT_LE(std::fabs(got - w), rel * std::fabs(w)) << "at (" << r << ", " << c << "): " << got << " vs " << w;
          }
        }
      }
    }
  }
}

TEST(PackedKernels, EveryIsaMatchesTheReference) {
  const std::vector<Isa> isas = supported_isas();
  std::printf("%-16s %-12s %-16s %12s %12s\n", "format", "isa", "kernels", "gemv err/bnd", "deq err/bnd");
  for (const char* format : kFormats) {
    std::vector<double> worst_gemv(isas.size()), worst_deq(isas.size());
    std::vector<std::string> kernel_name(isas.size());
    for (int64_t rows : kRows) {
      for (int64_t cols : kCols) {
        const QuantizedWeight q = quantized(format, rows, cols, 1000 + rows * 31 + cols);
        auto packed = pack_quantized_weight(q);
        ASSERT_TRUE(packed.ok()) << packed.status().message();
        const PackedMatrix& p = *packed;
        const std::vector<float> x = test_vector(cols, 5 + cols);
        PackedActivation a;
        prepare_activation(p, x.data(), a);
        std::vector<float> want(rows), ref(static_cast<size_t>(rows * cols));
        std::vector<double> bound(rows);
        gemv_packed_reference(p, x.data(), 0, rows, want.data());
        for (int64_t r = 0; r < rows; ++r) bound[r] = packed_gemv_bound(p, x.data(), r);
        for (int64_t i = 0; i < rows * cols; ++i) ref[i] = packed_value(p, i / cols, i % cols);
        // Two row ranges, so kernels starting inside the matrix are covered.
        const int64_t split = rows / 2;
        for (size_t v = 0; v < isas.size(); ++v) {
          SCOPED_TRACE(testing::Message() << format << " " << isa_name(isas[v]) << " [" << rows << ", " << cols << "]");
          const LinearKernel* entry = find_linear_kernel(p, ActFormat::kFp32, isas[v]);
          ASSERT_NE(entry, nullptr);
          const PackedKernels k = entry->fp;
          const std::string name = entry->name;
          kernel_name[v] = name;
          ASSERT_TRUE(isa_includes(isas[v], k.isa)) << name;
          EXPECT_EQ(entry->isa, k.isa) << name;
          // Every SIMD level runs SIMD kernels (none falls back to generic), named after their level;
          // on ARM, the layouts with NEON rows (lut4, int8, half).
          const bool simd_row = !isa_is_arm(isas[v]) || p.kind == PackedKind::kLut4 ||
                                p.kind == PackedKind::kInt8Row || p.kind == PackedKind::kFp16 ||
                                p.kind == PackedKind::kBf16;
          EXPECT_TRUE(isas[v] == Isa::kGeneric || !simd_row || k.isa != Isa::kGeneric) << name;
          // "<layout>/<level>[+<feature>]"
          const std::string level = name.substr(name.find('/') + 1);
          EXPECT_EQ(level.substr(0, level.find('+')), isa_name(k.isa));
          // Fixed-point kernels (lut4_fixed16.h) add the 16-bit quantization of x to their bound.
          PackedActivation a16;
          if (k.prepare_fixed16 != nullptr) prepare_activation(p, x.data(), a16, k.prepare_fixed16);
          const PackedActivation& ak = k.prepare_fixed16 != nullptr ? a16 : a;
          std::vector<float> got(rows);
          k.gemv(p, ak, 0, split, got.data());
          k.gemv(p, ak, split, rows, got.data() + split);
          int64_t worst_row = 0;
          double worst = 0.0;
          for (int64_t r = 0; r < rows; ++r) {
            const double rounding = !ak.fixed.valid                ? 0.0
                                    : p.kind == PackedKind::kInt8Row ? int8_fixed16_rounding_bound(p, ak, r)
                                                                     : lut4_fixed16_rounding_bound(p, ak, r);
            const double b = ak.fixed.valid ? rounding + fixed16_quantization_bound(p, ak, r) : bound[r];
            const double ratio = std::fabs(static_cast<double>(got[r]) - want[r]) / b;
            if (ratio > worst) worst = ratio, worst_row = r;
          }
          EXPECT_LE(worst, 1.0) << "gemv row " << worst_row << ": " << got[worst_row] << " vs " << want[worst_row];
          worst_gemv[v] = std::max(worst_gemv[v], worst);

          std::vector<float> deq(static_cast<size_t>(rows * cols), NAN);
          k.dequantize_rows(p, 0, split, deq.data());
          k.dequantize_rows(p, split, rows, deq.data() + split * cols);
          double worst_d = 0.0;
          int64_t worst_i = 0;
          for (int64_t i = 0; i < rows * cols; ++i) {
            // One rounding (a contracted multiply-add), relative to the larger term.
            const double tol = 0x1.0p-23 * (std::fabs(ref[i]) + 1e-30) + (p.asymmetric ? 0x1.0p-23 : 0.0);
            const double ratio = std::isnan(deq[i]) ? 1e30 : std::fabs(deq[i] - ref[i]) / tol;
            if (ratio > worst_d) worst_d = ratio, worst_i = i;
          }
          EXPECT_LE(worst_d, 1.0) << "dequantize element " << worst_i << ": " << deq[worst_i] << " vs " << ref[worst_i];
          worst_deq[v] = std::max(worst_deq[v], worst_d);
        }
      }
    }
    for (size_t v = 0; v < isas.size(); ++v) {
      std::printf("%-16s %-12s %-16s %12.3g %12.3g\n", format, isa_name(isas[v]), kernel_name[v].c_str(),
                  worst_gemv[v], worst_deq[v]);
    }
  }
}

TEST(PackedKernels, EachLevelPicksItsKernels) {
  auto name = [](const char* format, Isa isa) {
    const PackedMatrix w = pack_quantized_weight(quantized(format, 2, 64, 1)).value();
    return std::string(find_linear_kernel(w, ActFormat::kFp32, isa)->name);
  };
  auto fixed16 = [](const char* format, Isa isa) {
    const PackedMatrix w = pack_quantized_weight(quantized(format, 2, 64, 1)).value();
    return find_linear_kernel(w, ActFormat::kFp32, isa)->fp.prepare_fixed16 != nullptr;
  };
  EXPECT_EQ(name("int4_g128", Isa::kGeneric), "lut4/generic");
#ifdef LOWBIT_ARCH_ARM64
  for (Isa isa : {Isa::kNeon, Isa::kNeonDotprod, Isa::kNeonI8mm}) {
    EXPECT_EQ(name("int4_g128", isa), "lut4/neon");
    EXPECT_EQ(name("nf4_g64", isa), "lut4/neon");
    EXPECT_EQ(name("int8_pc", isa), "int8/neon");
    EXPECT_EQ(name("fp16", isa), "half/neon");
    EXPECT_EQ(name("bf16", isa), "half/neon");
    EXPECT_EQ(name("fp8_e4m3", isa), "fp8/generic");  // no NEON row yet
    EXPECT_FALSE(fixed16("int4_g128", isa));
  }
#endif
#ifdef LOWBIT_ARCH_X86
  EXPECT_EQ(name("int4_g128", Isa::kAvx2), "lut4/avx2+fixed16");
  EXPECT_EQ(name("nf4_g64", Isa::kAvx2), "lut4/avx2");  // its table bytes exceed 63: no fixed-point AVX2 GEMV
  EXPECT_EQ(name("int8_pc", Isa::kAvx2), "int8/avx2+fixed16");
  EXPECT_EQ(name("fp8_e4m3", Isa::kAvx2), "fp8/avx2");
  EXPECT_EQ(name("fp16", Isa::kAvx2), "half/avx2");
  EXPECT_EQ(name("bf16", Isa::kAvx2), "half/avx2");
  EXPECT_EQ(name("int4_g128", Isa::kAvx512), "lut4/avx512");
  EXPECT_EQ(name("int4_g128", Isa::kAvx512Vnni), detect_cpu_features().gfni ? "lut4/avx512vnni+gfni" : "lut4/avx512vnni");
  EXPECT_TRUE(fixed16("int4_g128", Isa::kAvx512Bf16));
  EXPECT_EQ(name("int8_pc", Isa::kAvx512), "int8/avx512");
  EXPECT_EQ(name("int8_pc", Isa::kAvx512Vnni), "int8/avx512vnni");
  EXPECT_EQ(name("bf16", Isa::kAvx512Bf16), "half/avx512");
  EXPECT_EQ(name("int2_g64", Isa::kAvx2), "bits/avx2");
  EXPECT_EQ(name("int2_g64", Isa::kAvx512), "bits/avx512");
#endif
}

// kBits stores each 2- / 3-bit code where packed_matrix.h says: every code of the
// block format (code_at) comes back from bits_code, padding codes are 0.
TEST(PackedKernels, BitsLayoutHoldsEveryCode) {
  for (const char* format : {"int2_g64", "int3_g128", "int2_g128_asym", "int3_g32_asym"}) {
    for (int64_t cols : {1, 17, 33, 255}) {
      const QuantizedWeight q = quantized(format, 3, cols, 11);
      const PackedMatrix p = get_packed(q);
      ASSERT_EQ(p.kind, PackedKind::kBits);
      const BlockFormat& f = *std::move(find_block_format(format)).value();
      for (int64_t r = 0; r < 3; ++r) {
        for (int64_t c = 0; c < p.cols_padded; ++c) {
          const uint32_t want = c < cols ? code_at(f, q.tensor, r, c) : 0u;
          ASSERT_EQ(bits_code(p, r, c), want) << format << " row " << r << " col " << c;
        }
      }
    }
  }
}

TEST(PackedKernels, FormatsWithoutAKernelSayWhy) {
  EXPECT_NE(packed_unsupported_reason(quantized("fp8_e4m3_b128", 4, 64, 1)), "");
  EXPECT_NE(packed_unsupported_reason(quantized("mxfp6_e2m3", 4, 64, 1)), "");
  QuantizedWeight q = quantized("int4_g128", 4, 64, 1);
  q.outliers.push_back({0, 0, 1.0f});
  EXPECT_EQ(packed_unsupported_reason(q), "sparse outliers");
  EXPECT_FALSE(pack_quantized_weight(q).ok());
  // The runtime falls back to the dequantized FP32 copy.
  std::string reason;
  auto lin = make_quantized_linear(std::move(q), {}, {}, &reason);
  ASSERT_TRUE(lin.ok());
  EXPECT_EQ(reason, "sparse outliers");
  EXPECT_NE(dynamic_cast<QuantizedLinear*>(lin->get()), nullptr);
}

// The asymmetric integer menu's entries without a packed layout (5-, 6- and 8-bit
// codes, and every per-row entry) say why, and the runtime runs their dequantized
// weight: the layer is the FP32 product with the reference decode, bit for bit.
TEST(PackedKernels, MenuFormatsWithoutAKernelRunDequantized) {
  ThreadPool pool(2);
  for (const char* format : {"int5_g32_asym", "int6_g64_asym", "int8_g128_asym", "int2_pc_asym", "int4_pc_asym",
                             "int8_pc_asym"}) {
    SCOPED_TRACE(format);
    const int64_t rows = 9, cols = 200;
    QuantizedWeight q = quantized(format, rows, cols, 4);
    EXPECT_NE(packed_unsupported_reason(q), "");
    std::vector<float> w(static_cast<size_t>(rows * cols));
    ASSERT_TRUE(dequantize_weight(q, w.data()).ok());
    std::string reason;
    auto lin = make_quantized_linear(std::move(q), {}, {}, &reason);
    ASSERT_TRUE(lin.ok()) << lin.status().message();
    EXPECT_NE(reason, "");
    const auto* dense = dynamic_cast<const QuantizedLinear*>(lin->get());
    ASSERT_NE(dense, nullptr);
    EXPECT_EQ(dense->dequantized().data, w);
    EXPECT_EQ(dense->describe().rfind(format, 0), 0u) << dense->describe();
    const std::vector<float> x = test_vector(3 * cols, 6);
    std::vector<float> y(static_cast<size_t>(3 * rows));
    (*lin)->forward(x.data(), 3, y.data(), pool);
    for (int64_t t = 0; t < 3; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        double s = 0.0, mag = 0.0;
        for (int64_t c = 0; c < cols; ++c) {
          s += static_cast<double>(w[r * cols + c]) * x[t * cols + c];
          mag += std::fabs(static_cast<double>(w[r * cols + c]) * x[t * cols + c]);
        }
        EXPECT_LE(std::fabs(y[t * rows + r] - s), (cols / 16.0 + 160.0) * 0x1.0p-24 * mag) << "token " << t << " row " << r;
      }
    }
  }
}

// PackedLinear on the thread pool: decode (GEMV per token) and prompt (tiles +
// sgemm) paths, bias included, against the dequantized weight in double.
TEST(PackedLinear, ThreadedForwardMatchesTheDequantizedProduct) {
  ThreadPool pool(2);
  for (const char* format : {"int4_g128_asym", "nvfp4", "int8_pc", "fp8_e4m3", "bf16"}) {
    for (int64_t rows : {17, 300}) {
      const int64_t cols = 4097;
      SCOPED_TRACE(testing::Message() << format << " rows " << rows);
      QuantizedWeight q = quantized(format, rows, cols, 3);
      std::vector<float> w(static_cast<size_t>(rows * cols));
      ASSERT_TRUE(dequantize_weight(q, w.data()).ok());
      std::vector<float> bias = test_vector(rows, 9);
      std::string reason;
      auto lin = make_quantized_linear(std::move(q), bias, {}, &reason);
      ASSERT_TRUE(lin.ok()) << lin.status().message();
      ASSERT_EQ(reason, "");
      const auto* packed = dynamic_cast<const PackedLinear*>(lin->get());
      ASSERT_NE(packed, nullptr);
      EXPECT_EQ(packed->describe().rfind(format, 0), 0u) << packed->describe();
      for (int64_t n : {1, 3, 5, 40}) {
        const std::vector<float> x = test_vector(n * cols, 11 + n);
        std::vector<float> y(static_cast<size_t>(n * rows));
        (*lin)->forward(x.data(), n, y.data(), pool);
        double worst = 0.0;
        for (int64_t t = 0; t < n; ++t) {
          for (int64_t r = 0; r < rows; ++r) {
            double s = bias[r], mag = std::fabs(bias[r]);
            for (int64_t c = 0; c < cols; ++c) {
              s += static_cast<double>(w[r * cols + c]) * x[t * cols + c];
              mag += std::fabs(static_cast<double>(w[r * cols + c]) * x[t * cols + c]);
            }
            // sgemm and the packed GEMV both accumulate in FP32: bound (K/16 + 160) eps sum |w x|,
            // plus the asymmetric min-sum rearrangement (covered by a factor 4).
            const double bound = 4.0 * (cols / 16.0 + 160.0) * 0x1.0p-24 * mag;
            worst = std::max(worst, std::fabs(y[t * rows + r] - s) / bound);
          }
        }
        EXPECT_LE(worst, 1.0) << "tokens " << n;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
