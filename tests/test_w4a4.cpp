// W4A4 kernels (kernels/w4a4.h): INT4 activation codes equal the simulation's
// (quant/act_quant "int4" per token / per group / static), the VNNI kernel is
// bit-identical to the reference over awkward shapes and every sub-block width
// (16, 32, 64, 128 and a 48 that takes the reference), and the reference equals
// the FP32 product of the dequantized weight and the fake-quantized input up to
// float rounding.
#include <gtest/gtest.h>

#include <cmath>

#include "core/half.h"
#include "kernels/w4a4.h"
#include "model/packed_convert.h"
#include "quant/act_quant.h"
#include "quant/quantized_weight.h"
#include "test_int8_act_util.h"
#include "test_quant_util.h"
#include "test_quantize_util.h"

namespace lowbit {
namespace {

using testing::gaussian;  // [rows, cols] N(0, sigma²), seeded
using testing::packed_weight;  // format, rows, cols, seed -> packed
using testing::regroup;        // the same codes, another group size

TEST(W4A4, Int4CodesAndScalesEqualTheSimulation) {
  struct Case {
    ActGranularity granularity;
    int group;
    float clip;
  };
  for (const Case& k : {Case{ActGranularity::kToken, 0, 1.0f}, Case{ActGranularity::kToken, 0, 0.8f},
                        Case{ActGranularity::kGroup, 32, 1.0f}, Case{ActGranularity::kGroup, 128, 1.0f},
                        Case{ActGranularity::kGroup, 48, 0.9f}, Case{ActGranularity::kTensor, 0, 1.0f}}) {
    ActQuantSpec spec;
    spec.format = "int4";
    spec.granularity = k.granularity;
    if (k.group > 0) spec.group = k.group;
    spec.clip = k.clip;
    const ActQuantizer sim = testing::get(ActQuantizer::create(spec));
    const float threshold = 2.5f;
    for (int64_t tokens : {1, 3, 17}) {
      for (int64_t cols : {1, 31, 32, 33, 255, 4097}) {
        SCOPED_TRACE(::testing::Message() << act_granularity_name(k.granularity) << " g" << k.group << " clip "
                                          << k.clip << " " << tokens << "x" << cols);
        std::vector<float> x = gaussian(tokens, cols, 5 + tokens + cols, 1.0f);
        x[0] = 3.5f;                                                              // amax 3.5 with clip 1: s = 0.5, so
        if (cols > 5) x[5] = 0.25f, x[4] = 0.75f;                                 // x / s = 0.5 and 1.5: ties to even
        if (tokens > 1) std::fill(x.begin() + cols, x.begin() + 2 * cols, 0.0f);  // an all-zero token
        std::vector<float> want(x.size());
        ASSERT_TRUE(sim.apply(x.data(), tokens, cols, want.data(), threshold).ok());
        IntActRule rule;
        rule.clip = k.clip;
        rule.static_threshold = spec.is_static() ? threshold : 0.0f;
        const int64_t padded = (cols + 31) / 32 * 32;
        Int4Activations a;
        quantize_activations_int4(x.data(), tokens, cols, padded, k.group, rule, a);
        int64_t bad = 0, first = -1;
        for (int64_t t = 0; t < tokens; ++t) {
          for (int64_t c = 0; c < padded; ++c) {
            if (c >= cols) {
              bad += a.q(t, c) != 0;
              continue;
            }
            const float s = a.scale[t * a.n_groups() + (k.group > 0 ? c / k.group : 0)];
            if (static_cast<float>(a.q(t, c)) * s != want[t * cols + c])
              bad += 1, first = first < 0 ? t * cols + c : first;
          }
        }
        EXPECT_EQ(bad, 0) << "first at " << first;
      }
    }
  }
}

TEST(W4A4, SupportNeedsIntegerWeightsAndSubBlocksOf16) {
  const PackedMatrix asym = packed_weight("int4_g128_asym", 2, 64, 1);
  EXPECT_TRUE(w4a4_supported(asym, 0));
  EXPECT_TRUE(w4a4_supported(asym, 32));
  EXPECT_TRUE(w4a4_supported(asym, 48));   // sub-blocks of 16
  EXPECT_FALSE(w4a4_supported(asym, 24));  // sub-blocks of 8
  EXPECT_TRUE(w4a4_supported(packed_weight("int4_g128", 2, 64, 1), 64));
  EXPECT_FALSE(w4a4_supported(packed_weight("nvfp4", 2, 64, 1), 0));
}

// Every SIMD kernel this CPU runs (AVX2, AVX-512 VNNI) against the reference, bit for bit.
TEST(W4A4, SimdKernelsAreBitIdenticalToTheReference) {
  std::vector<std::pair<const char*, W4A4Fn>> kernels;
  if (isa_supported(Isa::kAvx2, detect_cpu_features())) kernels.emplace_back("avx2", w4a4_avx2);
  if (isa_supported(Isa::kAvx512Vnni, detect_cpu_features())) kernels.emplace_back("avx512vnni", w4a4_avx512vnni);
  if (kernels.empty()) GTEST_SKIP() << "no AVX2 or AVX-512 VNNI on this CPU: only the reference runs";
  struct Grouping {
    int weight_group;  // 0: the format's 128
    int act_group;     // 0: per token
  };
  // Sub-blocks B: 128, 16, 32, 64, 128, 48 (reference fallback), 16 (weights by 48, acts by 32).
  const Grouping groupings[] = {{0, 0}, {16, 0}, {0, 32}, {0, 64}, {0, 128}, {48, 0}, {48, 32}};
  for (const auto& [name, kernel] : kernels) {
    for (const char* format : {"int4_g128_asym", "int4_g128"}) {
      for (const Grouping& gr : groupings) {
        for (int64_t rows : {1, 3, 17, 31, 32, 33, 255}) {
          for (int64_t cols : {32, 33, 255, 1000, 4097}) {
            PackedMatrix w = packed_weight(format, rows, cols, 10 + rows + cols);
            if (gr.weight_group > 0) w = regroup(std::move(w), gr.weight_group);
            ASSERT_TRUE(w.validate().ok());
            for (int64_t tokens : {1, 3, 17, 33}) {
              if (rows * cols * tokens > 3'000'000) continue;  // keep the int64 reference affordable
              SCOPED_TRACE(::testing::Message() << name << " " << format << " wg " << w.group << " ag " << gr.act_group
                                                << " [" << rows << ", " << cols << "] x " << tokens);
              const std::vector<float> x = gaussian(tokens, cols, 3 + cols, 1.0f);
              Int4Activations a;
              quantize_activations_int4(x.data(), tokens, cols, w.cols_padded, gr.act_group, {}, a);
              const std::vector<int32_t> qsum = w4a4_block_sums(w, a);
              std::vector<float> want(static_cast<size_t>(tokens * rows)), got(want.size(), NAN);
              w4a4_reference(w, a, qsum, 0, rows, want.data(), rows);
              const int64_t split = rows / 2;  // two row ranges, as the thread pool splits them
              kernel(w, a, qsum, 0, split, got.data(), rows);
              kernel(w, a, qsum, split, rows, got.data() + split, rows);
              for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "output " << i;
            }
          }
        }
      }
    }
  }
}

// The reference against the product of the dequantized weight and the
// fake-quantized input, in double: the integer dots are exact, so the difference
// is the float steps of w4a4_finish: |err| <= (n_blocks + 4) * 2^-24 * sum_c |w_c xq_c|
// with the weight's scale products counted in absolute value (a recursive-summation bound).
TEST(W4A4, ReferenceEqualsTheFakeQuantizedProduct) {
  for (const char* format : {"int4_g128_asym", "int4_g128"}) {
    for (int act_group : {0, 32}) {
      const int64_t rows = 9, cols = 1000, tokens = 3;
      const PackedMatrix w = packed_weight(format, rows, cols, 77);
      const std::vector<float> x = gaussian(tokens, cols, 78, 1.0f);
      Int4Activations a;
      quantize_activations_int4(x.data(), tokens, cols, w.cols_padded, act_group, {}, a);
      const std::vector<int32_t> qsum = w4a4_block_sums(w, a);
      std::vector<float> y(static_cast<size_t>(tokens * rows));
      w4a4_reference(w, a, qsum, 0, rows, y.data(), rows);
      const int64_t nk = (w.cols_padded + w4a4_block(w, a) - 1) / w4a4_block(w, a);
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
          double exact = 0.0, mag = 0.0;
          for (int64_t c = 0; c < cols; ++c) {
            const double xq =
                a.q(t, c) * static_cast<double>(a.scale[t * a.n_groups() + (act_group ? c / act_group : 0)]);
            exact += static_cast<double>(packed_value(w, r, c)) * xq;
            // |code s_g| + |m_g|: the magnitudes w4a4_finish multiplies (int4 formats have FP16 scales).
            const double m = w.asymmetric ? fp16_to_float(w.mins[r * w.n_groups() + c / w.group]) : 0.0;
            mag += (std::fabs(packed_value(w, r, c) - m) + std::fabs(m)) * std::fabs(xq);
          }
          const double bound = (nk + 4) * 0x1.0p-24 * mag;
          EXPECT_LE(std::fabs(y[t * rows + r] - exact), bound)
              << format << " ag " << act_group << " token " << t << " row " << r << ": " << y[t * rows + r] << " vs "
              << exact;
        }
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
