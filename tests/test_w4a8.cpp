// W4A8 kernels (kernels/w4a8.h): which tables qualify, AVX2 and VNNI
// bit-identical to the reference over awkward shapes (groups of 128, 16 and 48)
// and at the extreme codes, and the bound against the FP32 product.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <random>

#include "kernels/kernel_table.h"
#include "kernels/w4a8.h"
#include "model/packed_convert.h"
#include "quant/quantized_weight.h"
#include "test_int8_act_util.h"
#include "test_quant_util.h"

namespace lowbit {
namespace {

using testing::gaussian;  // [rows, cols] N(0, sigma²), seeded

using testing::packed_weight;  // format, rows, cols, seed -> packed
using testing::regroup;        // the same codes, another group size

struct Variant {
  const char* name;
  W4A8Fn fn;
};

// The SIMD kernels this CPU runs.
std::vector<Variant> supported_variants() {
  std::vector<Variant> out;
  if (isa_supported(Isa::kAvx2, detect_cpu_features())) out.push_back({"avx2", w4a8_avx2});
  if (detect_cpu_features().avx_vnni) out.push_back({"avxvnni", w4a8_avxvnni});
  if (isa_supported(Isa::kAvx512Vnni, detect_cpu_features())) out.push_back({"avx512vnni", w4a8_avx512vnni});
  return out;
}

TEST(W4A8, IntegerTablesQualify) {
  bool signed_codes = true;
  EXPECT_TRUE(w4a8_supported(packed_weight("int4_g128_asym", 2, 64, 1), &signed_codes));
  EXPECT_FALSE(signed_codes);
  EXPECT_TRUE(w4a8_supported(packed_weight("int4_g128", 2, 64, 1), &signed_codes));
  EXPECT_TRUE(signed_codes);
  EXPECT_FALSE(w4a8_supported(packed_weight("nvfp4", 2, 64, 1), nullptr));
  EXPECT_FALSE(w4a8_supported(packed_weight("nf4_g64", 2, 64, 1), nullptr));
}

TEST(W4A8, EachLevelPicksItsKernel) {
  const PackedMatrix w = packed_weight("int4_g128_asym", 2, 64, 1);
  auto entry = [&](Isa isa) { return find_linear_kernel(w, ActFormat::kInt8, isa); };
  EXPECT_EQ(entry(Isa::kGeneric)->w4a8, w4a8_reference);
  EXPECT_EQ(entry(Isa::kAvx2)->w4a8, w4a8_avx2);
  // AVX-512 without VNNI runs the 256-bit kernel: the AVX-VNNI one where the CPU has it.
  const bool vex_vnni = detect_cpu_features().avx_vnni;
  EXPECT_EQ(entry(Isa::kAvxVnni)->w4a8, vex_vnni ? w4a8_avxvnni : w4a8_avx2);
  EXPECT_EQ(entry(Isa::kAvx512)->w4a8, vex_vnni ? w4a8_avxvnni : w4a8_avx2);
  EXPECT_EQ(entry(Isa::kAvx512Vnni)->w4a8, w4a8_avx512vnni);
  // The label names the kernel that runs (it said "w4a8/reference" for w4a8_avx2 before the table).
  EXPECT_STREQ(entry(Isa::kAvx2)->name, "w4a8/avx2");
  EXPECT_STREQ(entry(Isa::kAvx512)->name, vex_vnni ? "w4a8/avxvnni" : "w4a8/avx2");
  EXPECT_EQ(entry(Isa::kAvx512)->group_sums, group_activation_sums_rows);
  EXPECT_EQ(entry(Isa::kAvx512Vnni)->group_sums, group_activation_sums_rows_avx512);
}

// The AVX-512 group sums of q equal the portable loop's: groups of 16 (a quarter
// vector), 48 (a masked tail), 128, 512 (several vectors), a short last group,
// and the extreme activations (every q = +-127).
TEST(W4A8, GroupSumsMatchThePortableLoop) {
  if (!isa_supported(Isa::kAvx512Vnni, detect_cpu_features())) GTEST_SKIP() << "no AVX-512 VNNI";
  for (int group : {16, 48, 128, 512}) {
    for (int64_t cols : {1, 31, 33, 255, 4097}) {
      SCOPED_TRACE(::testing::Message() << "group " << group << ", " << cols << " columns");
      PackedMatrix w = regroup(packed_weight("int4_g128_asym", 1, cols, 5), group);
      for (bool extreme : {false, true}) {
        Int8Activations a = testing::extreme_int8_activations(cols, w.cols_padded);
        if (!extreme) {
          const std::vector<float> x = gaussian(7, cols, 11 + cols, 1.0f);
          quantize_activations_int8(x.data(), 7, cols, w.cols_padded, a);
        }
        std::vector<int32_t> want(static_cast<size_t>(a.tokens * w.n_groups()), -1), got(want.size(), -2);
        group_activation_sums_rows(w, a, 0, a.tokens, want.data());
        group_activation_sums_rows_avx512(w, a, 0, a.tokens, got.data());
        EXPECT_EQ(got, want);
      }
    }
  }
}

TEST(W4A8, EveryIsaIsBitIdenticalToTheReference) {
  const std::vector<Variant> variants = supported_variants();
  if (variants.empty()) GTEST_SKIP() << "no AVX2";
  for (const char* format : {"int4_g128_asym", "int4_g128"}) {
    for (int group : {0, 16, 48}) {  // 0: the format's own groups
      for (int64_t rows : {1, 3, 17, 33}) {
        for (int64_t cols : {1, 3, 17, 31, 32, 33, 255, 4097}) {
          PackedMatrix w = packed_weight(format, rows, cols, 10 + rows + cols);
          if (group != 0) w = regroup(std::move(w), group);
          ASSERT_TRUE(w.validate().ok());
          for (int64_t tokens : {1, 3}) {
            SCOPED_TRACE(::testing::Message() << format << " g" << w.group << " [" << rows << ", " << cols << "] x "
                                              << tokens);
            const std::vector<float> x = gaussian(tokens, cols, 3 + cols, 1.0f);
            Int8Activations a;
            quantize_activations_int8(x.data(), tokens, cols, w.cols_padded, a);
            const std::vector<int32_t> qsum = group_activation_sums(w, a);
            std::vector<float> want(static_cast<size_t>(tokens * rows));
            w4a8_reference(w, a, qsum, 0, rows, want.data(), rows);
            const int64_t split = rows / 2;
            for (const Variant& v : variants) {
              std::vector<float> got(want.size(), NAN);
              v.fn(w, a, qsum, 0, split, got.data(), rows);
              v.fn(w, a, qsum, split, rows, got.data() + split, rows);
              for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << v.name << " output " << i;
            }
            // Against the FP32 product: only the activation rounding (and FP32 steps).
            for (int64_t t = 0; t < tokens; ++t) {
              for (int64_t r = 0; r < rows; ++r) {
                double exact = 0.0, wabs = 0.0;
                for (int64_t c = 0; c < cols; ++c) {
                  exact += static_cast<double>(packed_value(w, r, c)) * x[t * cols + c];
                  wabs += std::fabs(static_cast<double>(packed_value(w, r, c)));
                }
                EXPECT_LE(std::fabs(want[t * rows + r] - exact), a.scale[t] / 2.0 * wabs + 1e-4 * (1.0 + wabs))
                    << "token " << t << " row " << r;
              }
            }
          }
        }
      }
    }
  }
}

// The largest group dots: codes whose unsigned operand is 15 (UINT4 15, INT4 7)
// against activations +-127 in groups of 512 (16 blocks), where int16 partial
// sums would overflow if more than 8 blocks were added before widening.
TEST(W4A8, ExtremeCodesInLongGroupsAreExact) {
  const std::vector<Variant> variants = supported_variants();
  if (variants.empty()) GTEST_SKIP() << "no AVX2";
  for (bool asymmetric : {true, false}) {
    const int64_t rows = 4, cols = 2048 + 17;
    PackedMatrix w;
    w.kind = PackedKind::kLut4;
    w.rows = rows;
    w.cols = cols;
    w.cols_padded = (cols + 31) / 32 * 32;
    w.group = 512;
    w.asymmetric = asymmetric;
    for (int c = 0; c < 16; ++c) w.lut[c] = static_cast<float>(asymmetric || c < 8 ? c : c - 16);
    const uint8_t pattern[rows] = {0xFF, 0x77, 0x88, 0x7F};  // per row: both nibbles of every byte
    w.codes.resize(static_cast<size_t>(rows * w.row_bytes()));
    for (int64_t r = 0; r < rows; ++r) std::fill_n(w.codes.begin() + r * w.row_bytes(), w.row_bytes(), pattern[r]);
    w.scales.assign(static_cast<size_t>(rows * w.n_groups()), 0x3C00);  // FP16 1.0
    if (asymmetric) w.mins.assign(w.scales.size(), 0xBC00);             // FP16 -1.0
    ASSERT_TRUE(w.validate().ok());
    bool signed_codes = false;
    ASSERT_TRUE(w4a8_supported(w, &signed_codes));
    ASSERT_EQ(signed_codes, !asymmetric);
    const Int8Activations a = testing::extreme_int8_activations(cols, w.cols_padded);
    const int64_t tokens = a.tokens;
    ASSERT_EQ(a.u8[0], 255);
    const std::vector<int32_t> qsum = group_activation_sums(w, a);
    std::vector<float> want(static_cast<size_t>(tokens * rows));
    w4a8_reference(w, a, qsum, 0, rows, want.data(), rows);
    // Row 0, token 0: every weight is 15 (UINT4, min -1: 14) or -1 (INT4), every q 127.
    EXPECT_NEAR(want[0], (asymmetric ? 14.0 : -1.0) * cols, 1e-2 * cols);
    for (const Variant& v : variants) {
      std::vector<float> got(want.size(), NAN);
      v.fn(w, a, qsum, 0, rows, got.data(), rows);
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i], want[i]) << v.name << (asymmetric ? " uint4" : " int4") << " token " << i / rows << " row "
                                   << i % rows;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
