// The fixed-point GEMVs (kernels/lut4_fixed16.h, kernels/int8_fixed16.h). kLut4: byte tables, the
// activation split, a hand-computed case, and every fixed-point kernel this CPU runs (AVX2
// vpmaddubsw, VNNI, VNNI + GFNI) against the fixed-point reference (FP32 rounding only) and
// against the exact product (plus the 16-bit quantization of x), over groups of 16, 32, 64, 128,
// 256 and awkward shapes; the AVX2 kernel's table limit (u <= 63) at its bound; NaN activations
// and ineligible layouts run the FP32 kernel. kInt8Row: AVX2 and VNNI, bit-identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include "kernels/cpu_features.h"
#include "kernels/int8_fixed16.h"
#include "kernels/kernel_table.h"
#include "kernels/lut4_fixed16.h"
#include "kernels/packed_matrix.h"
#include "test_int8_act_util.h"

namespace lowbit {
namespace {

using testing::packed_weight;  // a seeded Gaussian weight, quantized and packed
using testing::regroup;        // the same codes, another group size

std::vector<float> gaussian_vector(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = d(rng);
  if (n > 5) x[n / 3] = 40.0f;  // one outlier sets the scale
  return x;
}

bool vnni_here() { return isa_supported(Isa::kAvx512Vnni, detect_cpu_features()); }

// Every fixed-point kLut4 kernel this CPU runs: AVX2 (vpmaddubsw), AVX-VNNI, VNNI, VNNI + GFNI.
std::vector<PackedKernels> lut4_fixed16_kernels() {
  std::vector<PackedKernels> out;
  const CpuFeatures f = detect_cpu_features();
  if (isa_supported(Isa::kAvx2, f)) out.push_back(packed_kernels_lut4_fixed16_avx2());
  if (isa_supported(Isa::kAvxVnni, f)) out.push_back(packed_kernels_lut4_fixed16_avxvnni());
  if (isa_supported(Isa::kAvx512Vnni, f)) out.push_back(packed_kernels_lut4_avx512vnni());
  if (isa_supported(Isa::kAvx512Vnni, f) && f.gfni) out.push_back(packed_kernels_lut4_avx512vnni_gfni());
  return out;
}

using FixedReference = void (*)(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y);
using RoundingBound = double (*)(const PackedMatrix& w, const PackedActivation& a, int64_t r);

// k.gemv over two row ranges (so kernels starting inside the matrix run) against
// the layout's fixed-point reference, within its FP32 rounding bound, and that
// reference against the exact product of x, within the 16-bit quantization of x
// plus the rounding.
void expect_fixed16_bounds(const PackedKernels& k, const PackedMatrix& w, const std::vector<float>& x,
                           const PackedActivation& a, FixedReference reference, RoundingBound rounding) {
  const int64_t rows = w.rows, split = rows / 2;
  std::vector<float> got(rows), fixed_ref(rows), exact(rows);
  k.gemv(w, a, 0, split, got.data());
  k.gemv(w, a, split, rows, got.data() + split);
  reference(w, a, 0, rows, fixed_ref.data());
  gemv_packed_reference(w, x.data(), 0, rows, exact.data());
  for (int64_t r = 0; r < rows; ++r) {
    const double rb = rounding(w, a, r), qb = fixed16_quantization_bound(w, a, r);
    ASSERT_LE(std::fabs(static_cast<double>(got[r]) - fixed_ref[r]), rb)
        << "row " << r << ": " << got[r] << " vs reference " << fixed_ref[r];
    ASSERT_LE(std::fabs(static_cast<double>(fixed_ref[r]) - exact[r]), qb + rb)
        << "row " << r << ": " << fixed_ref[r] << " vs exact " << exact[r];
  }
}

TEST(Lut4Fixed16, ByteTables) {
  // INT4 symmetric: two's-complement codes, lut = -8..7 -> u = lut + 8 (a shuffle).
  const Lut4ByteTable sym = lut4_byte_table(packed_weight("int4_g128", 1, 32, 1));
  ASSERT_TRUE(sym.ok);
  EXPECT_EQ(sym.multiplier, 1.0f);
  EXPECT_EQ(sym.offset, 8);
  // UINT4 with a minimum: the code itself.
  const Lut4ByteTable asym = lut4_byte_table(packed_weight("int4_g128_asym", 1, 32, 1));
  ASSERT_TRUE(asym.ok);
  EXPECT_TRUE(asym.identity);
  EXPECT_EQ(asym.offset, 0);
  // FP4 E2M1 times 2: -12..12.
  const Lut4ByteTable fp4 = lut4_byte_table(packed_weight("mxfp4", 1, 32, 1));
  ASSERT_TRUE(fp4.ok);
  EXPECT_EQ(fp4.multiplier, 2.0f);
  EXPECT_EQ(fp4.offset, 12);
  const PackedMatrix mx = packed_weight("mxfp4", 1, 32, 1);
  for (int c = 0; c < 16; ++c) EXPECT_EQ((fp4.u[c] - fp4.offset) / fp4.multiplier, mx.lut[c]) << "code " << c;
  // NF4 is not an integer table; NVFP4 (groups of 16) is FP4 again.
  EXPECT_FALSE(lut4_byte_table(packed_weight("nf4_g64", 1, 32, 1)).ok);
  EXPECT_TRUE(lut4_fixed16_eligible(packed_weight("nvfp4", 1, 32, 1)));
  EXPECT_FALSE(lut4_fixed16_eligible(regroup(packed_weight("int4_g128", 1, 96, 1), 48)));
  EXPECT_TRUE(lut4_fixed16_eligible(regroup(packed_weight("int4_g128", 1, 96, 1), 32)));
}

// Byte p of vector P of chunk ch holds column 128 ch + 32 (p / 16) + 16 (P % 2) + p % 16:
// lo bytes for P < 2, hi bytes for P >= 2; 256 hi + lo = round(x / scale).
TEST(Lut4Fixed16, ActivationSplitsIntoTwoBytes) {
  for (int64_t cols : {1, 17, 33, 129, 255, 4097}) {
    const PackedMatrix w = packed_weight("int4_g128", 1, cols, 2);
    const std::vector<float> x = gaussian_vector(cols, cols);
    PackedActivation a;
    prepare_activation(w, x.data(), a, prepare_lut4_fixed16);
    ASSERT_TRUE(a.fixed.valid);
    float amax = 0.0f;
    for (float v : x) amax = std::max(amax, std::fabs(v));
    EXPECT_EQ(a.fixed.scale, amax / 32639.0f);
    const int64_t chunks = (w.cols_padded + 127) / 128;
    ASSERT_EQ(a.fixed.bytes.size(), static_cast<size_t>(256 * chunks));
    std::vector<int64_t> sums(static_cast<size_t>(w.n_groups()), 0);
    for (int64_t ch = 0; ch < chunks; ++ch) {
      for (int half = 0; half < 2; ++half) {
        for (int p = 0; p < 64; ++p) {
          const int64_t c = 128 * ch + 32 * (p / 16) + 16 * half + p % 16;
          const int32_t xi = 256 * a.fixed.bytes[256 * ch + 64 * (2 + half) + p] + a.fixed.bytes[256 * ch + 64 * half + p];
          if (c >= cols) {
            ASSERT_EQ(xi, 0) << "padding column " << c;
            continue;
          }
          ASSERT_LE(std::abs(xi), kFixed16Max);
          ASSERT_LE(std::fabs(x[c] - a.fixed.scale * xi), 0.51f * a.fixed.scale) << "column " << c;
          sums[c / w.group] += xi;
        }
      }
    }
    for (int64_t g = 0; g < w.n_groups(); ++g) EXPECT_EQ(a.fixed.group_sums[g], static_cast<float>(sums[g]));
  }
}

// Every fixed-point kernel's SIMD preparation equals the portable one: same bytes, sums, scale.
TEST(Lut4Fixed16, SimdPreparationEqualsThePortableOne) {
  const std::vector<PackedKernels> variants = lut4_fixed16_kernels();
  if (variants.empty()) GTEST_SKIP() << "no AVX2 on this CPU: no fixed-point kLut4 kernel";
  for (const PackedKernels& k : variants) {
    SCOPED_TRACE(isa_name(k.isa));
    for (int group : {16, 32, 64, 128, 256}) {
      for (int64_t cols : {1, 3, 17, 31, 32, 33, 129, 255, 4097}) {
        SCOPED_TRACE(::testing::Message() << "group " << group << " cols " << cols);
        const PackedMatrix w = regroup(packed_weight("int4_g128", 2, cols, 5), group);
        for (int variant = 0; variant < 3; ++variant) {
          std::vector<float> x = gaussian_vector(cols, 11 + cols);
          if (variant == 1) std::fill(x.begin(), x.end(), 0.0f);  // all zero: scale 0
          if (variant == 2) x[cols - 1] = INFINITY;               // not finite: no fixed-point copy
          PackedActivation want, got;
          prepare_activation(w, x.data(), want, prepare_lut4_fixed16);
          prepare_activation(w, x.data(), got, k.prepare_fixed16);
          ASSERT_EQ(got.fixed.valid, want.fixed.valid);
          EXPECT_EQ(got.fixed.valid, variant != 2);
          if (!want.fixed.valid) continue;
          EXPECT_EQ(got.fixed.scale, want.fixed.scale);
          EXPECT_EQ(got.fixed.bytes, want.fixed.bytes);
          EXPECT_EQ(got.fixed.group_sums, want.fixed.group_sums);
        }
      }
    }
  }
}

// A case by hand: codes with lut = code - 8, group scales 0.5 and 1.0 (FP16),
// x = small integers with max |x| = 32639, so the fixed-point scale is 1 and
// every sum is exact.
TEST(Lut4Fixed16, HandComputedRow) {
  const std::vector<PackedKernels> variants = lut4_fixed16_kernels();
  if (variants.empty()) GTEST_SKIP() << "no AVX2 on this CPU: no fixed-point kLut4 kernel";
  PackedMatrix w;
  w.kind = PackedKind::kLut4;
  w.rows = 1;
  w.cols = w.cols_padded = 256;
  w.group = 128;
  for (int c = 0; c < 16; ++c) w.lut[c] = static_cast<float>(c - 8);
  w.scales = {0x3800, 0x3C00};  // FP16 0.5, 1.0
  w.codes.assign(128, 0);
  std::vector<float> x(256);
  double want = 0.0;
  for (int64_t c = 0; c < 256; ++c) {
    const int code = static_cast<int>((c * 7) % 16);
    w.codes[16 * (c / 32) + (c % 32) % 16] |= static_cast<uint8_t>((c % 32) < 16 ? code : code << 4);
    x[c] = c == 0 ? 32639.0f : static_cast<float>((c * 13) % 41 - 20);
    want += (c < 128 ? 0.5 : 1.0) * (code - 8) * x[c];
  }
  ASSERT_TRUE(w.validate().ok());
  for (const PackedKernels& k : variants) {
    SCOPED_TRACE(isa_name(k.isa));
    ASSERT_NE(k.prepare_fixed16, nullptr);
    PackedActivation a;
    prepare_activation(w, x.data(), a, k.prepare_fixed16);
    ASSERT_TRUE(a.fixed.valid);
    ASSERT_EQ(a.fixed.scale, 1.0f);
    float got = 0.0f;
    k.gemv(w, a, 0, 1, &got);
    EXPECT_EQ(got, static_cast<float>(want));
  }
}

// The kernel against the reference over eligible layouts and awkward shapes.
TEST(Lut4Fixed16, EveryKernelMatchesTheReferences) {
  const std::vector<PackedKernels> variants = lut4_fixed16_kernels();
  if (variants.empty()) GTEST_SKIP() << "no AVX2 on this CPU: no fixed-point kLut4 kernel";
  for (const PackedKernels& k : variants) {
    SCOPED_TRACE(k.gemv == variants[0].gemv ? "shift + mask" : "gfni");
    struct Case {
      const char* format;
      int group;  // 0: the format's own
    };
    const Case cases[] = {{"int4_g128", 0},      {"int4_g128_asym", 0}, {"mxfp4", 0},    {"mxfp4_up", 0},
                          {"fp4_g128_pow2", 0},  {"int4_g128", 64},     {"int4_g128", 32}, {"int4_g128_asym", 256},
                          {"int4_g128_asym", 32}, {"nvfp4", 0},  {"int4_g128_asym", 16}};
    for (const Case& cs : cases) {
      for (int64_t rows : {1, 3, 17, 33}) {
        for (int64_t cols : {1, 3, 31, 32, 33, 255, 4097}) {
          SCOPED_TRACE(::testing::Message() << cs.format << " g" << cs.group << " [" << rows << ", " << cols << "]");
          PackedMatrix w = packed_weight(cs.format, rows, cols, 100 + rows + cols);
          if (cs.group != 0) w = regroup(w, cs.group);
          ASSERT_TRUE(lut4_fixed16_eligible(w));
          ASSERT_TRUE(lut4_fixed16_avx2_eligible(w));
          const std::vector<float> x = gaussian_vector(cols, 7 + cols);
          PackedActivation a;
          prepare_activation(w, x.data(), a, k.prepare_fixed16);
          ASSERT_TRUE(a.fixed.valid);
          expect_fixed16_bounds(k, w, x, a, gemv_lut4_fixed16_reference, lut4_fixed16_rounding_bound);
          if (::testing::Test::HasFatalFailure()) return;
        }
      }
    }
  }
}

// The AVX2 kernel's int16 sums hold four products u * byte only for u <= 63: a
// wider integer table (here 0, 8, .., 120) is eligible for VNNI but not for AVX2,
// whose preparation then leaves x in FP32 and whose GEMV runs lut4/avx2 bit for bit.
TEST(Lut4Fixed16, Avx2TakesOnlyTablesUpTo63) {
  if (!isa_supported(Isa::kAvx2, detect_cpu_features())) GTEST_SKIP() << "no AVX2 on this CPU";
  PackedMatrix w = packed_weight("int4_g128_asym", 5, 300, 3);
  EXPECT_TRUE(lut4_fixed16_avx2_eligible(w));
  for (int c = 0; c < 16; ++c) w.lut[c] = static_cast<float>(8 * c);
  ASSERT_TRUE(lut4_fixed16_eligible(w));
  EXPECT_EQ(lut4_byte_table(w).u[15], 120);
  EXPECT_FALSE(lut4_fixed16_avx2_eligible(w));
  const PackedKernels k = packed_kernels_lut4_fixed16_avx2(), fp32 = packed_kernels_lut4_avx2();
  const std::vector<float> x = gaussian_vector(300, 4);
  PackedActivation a;
  prepare_activation(w, x.data(), a, k.prepare_fixed16);
  EXPECT_FALSE(a.fixed.valid);
  std::vector<float> got(5), want(5);
  k.gemv(w, a, 0, 5, got.data());
  fp32.gemv(w, a, 0, 5, want.data());
  EXPECT_EQ(got, want);
  // At the limit, lut = 0, 4, .., 56, 63 (u = lut, max 63): every code 15 and
  // every lo byte -128 (xi = -128; x[0] = 32639 sets the scale to 1) puts each
  // int16 sum of four products at -4 * 63 * 128 = -32256; the result stays exact.
  for (int c = 0; c < 16; ++c) w.lut[c] = c == 15 ? 63.0f : static_cast<float>(4 * c);
  ASSERT_TRUE(lut4_fixed16_avx2_eligible(w));
  std::fill(w.codes.begin(), w.codes.end(), static_cast<uint8_t>(0xFF));
  std::vector<float> edge(300, -128.0f);
  edge[0] = 32639.0f;
  prepare_activation(w, edge.data(), a, k.prepare_fixed16);
  ASSERT_TRUE(a.fixed.valid);
  ASSERT_EQ(a.fixed.scale, 1.0f);
  expect_fixed16_bounds(k, w, edge, a, gemv_lut4_fixed16_reference, lut4_fixed16_rounding_bound);
  prepare_activation(w, x.data(), a, k.prepare_fixed16);
  expect_fixed16_bounds(k, w, x, a, gemv_lut4_fixed16_reference, lut4_fixed16_rounding_bound);
}

// NaN in x, or a layout the kernel does not take (NF4): k leaves x in FP32 and
// returns its level's FP32 kernel's result, bit for bit.
void expect_fp32_fallback(const PackedKernels& k, const PackedKernels& fp32) {
  for (const char* format : {"int4_g128", "nf4_g64"}) {
    const PackedMatrix w = packed_weight(format, 5, 300, 3);
    std::vector<float> x = gaussian_vector(300, 4);
    if (std::string(format) == "int4_g128") x[17] = NAN;
    PackedActivation a;
    prepare_activation(w, x.data(), a, k.prepare_fixed16);
    EXPECT_FALSE(a.fixed.valid) << format;
    std::vector<float> got(5), want(5);
    k.gemv(w, a, 0, 5, got.data());
    fp32.gemv(w, a, 0, 5, want.data());
    for (int r = 0; r < 5; ++r) {
      if (std::isnan(want[r])) {
        EXPECT_TRUE(std::isnan(got[r])) << format << " row " << r;
      } else {
        EXPECT_EQ(got[r], want[r]) << format << " row " << r;
      }
    }
  }
}

// The AVX-VNNI row computes the AVX2 row's integer sums on vpdpbusd: the same
// floats bit for bit, for every group width's lane mapping (16: nvfp4, 32, 64, >= 128),
// a table (nvfp4), the identity (int4), odd row counts and a short last block.
TEST(Lut4Fixed16, AvxVnniEqualsAvx2BitForBit) {
  if (!isa_supported(Isa::kAvxVnni, detect_cpu_features())) GTEST_SKIP() << "no AVX-VNNI on this CPU";
  const PackedKernels avx2 = packed_kernels_lut4_fixed16_avx2(), vnni = packed_kernels_lut4_fixed16_avxvnni();
  int compared = 0;
  for (const char* format : {"nvfp4", "int4_g32_asym", "int4_g64_asym", "int4_g128", "int4_g128_asym"}) {
    for (int64_t cols : {31, 96, 300, 2048}) {
      const PackedMatrix w = packed_weight(format, 7, cols, 11 + cols);
      if (!lut4_fixed16_avx2_eligible(w)) continue;
      const std::vector<float> x = gaussian_vector(cols, 5 + cols);
      PackedActivation a;
      prepare_activation(w, x.data(), a, avx2.prepare_fixed16);
      ASSERT_TRUE(a.fixed.valid) << format;
      std::vector<float> want(7), got(7);
      avx2.gemv(w, a, 0, 7, want.data());
      vnni.gemv(w, a, 0, 3, got.data());
      vnni.gemv(w, a, 3, 7, got.data() + 3);
      EXPECT_EQ(got, want) << format << " cols " << cols;
      ++compared;
    }
  }
  EXPECT_GE(compared, 15);
}

TEST(Lut4Fixed16, Avx2FallsBackToFp32) {
  if (!isa_supported(Isa::kAvx2, detect_cpu_features())) GTEST_SKIP() << "no AVX2 on this CPU";
  const PackedMatrix int4 = packed_weight("int4_g128", 1, 32, 1);
  ASSERT_STREQ(find_linear_kernel(int4, ActFormat::kFp32, Isa::kAvx2)->name, "lut4/avx2+fixed16");
  expect_fp32_fallback(packed_kernels_lut4_fixed16_avx2(), packed_kernels_lut4_avx2());
}

TEST(Lut4Fixed16, FallsBackToFp32) {
  if (!vnni_here()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  expect_fp32_fallback(packed_kernels_lut4_avx512vnni(), packed_kernels_lut4_avx512());
}

// kInt8Row, every fixed-point kernel this CPU runs (AVX2 vpmaddwd, AVX-VNNI, AVX-512 VNNI): the
// SIMD preparation equals the portable one; the kernel matches the fixed-point
// reference within FP32 rounding and the exact product within the quantization
// of x, and the kernels return the same bits (same integer sum, same float
// steps); codes at both ends of INT8 (-128 included) with x = ±32639 are exact,
// also past 4096 columns (where the AVX2 kernel flushes its int32 lanes); NaN
// falls back to the level's FP32 kernel.
TEST(Int8Fixed16, EveryKernelMatchesTheReferences) {
  const CpuFeatures features = detect_cpu_features();
  std::vector<std::pair<PackedKernels, PackedKernels>> variants;  // {fixed-point, its FP32 fallback}
  if (isa_supported(Isa::kAvx2, features)) {
    variants.push_back({packed_kernels_int8_fixed16_avx2(), packed_kernels_int8_avx2()});
  }
  if (features.avx_vnni) variants.push_back({packed_kernels_int8_fixed16_avxvnni(), packed_kernels_int8_avx2()});
  if (vnni_here()) variants.push_back({packed_kernels_int8_avx512vnni(), packed_kernels_int8_avx512()});
  if (variants.empty()) GTEST_SKIP() << "no AVX2 on this CPU: no fixed-point kInt8Row kernel";
  EXPECT_STREQ(find_linear_kernel(packed_weight("int8_pc", 1, 32, 1), ActFormat::kFp32, Isa::kAvx2)->name,
               "int8/avx2+fixed16");
  for (int64_t rows : {1, 3, 17, 33}) {
    for (int64_t cols : {1, 3, 31, 32, 33, 64, 65, 255, 4097, 9000}) {
      SCOPED_TRACE(::testing::Message() << "[" << rows << ", " << cols << "]");
      const PackedMatrix w = packed_weight("int8_pc", rows, cols, 200 + rows + cols);
      const std::vector<float> x = gaussian_vector(cols, 9 + cols);
      PackedActivation want;
      prepare_activation(w, x.data(), want, prepare_int8_fixed16);
      std::vector<float> first;
      for (const auto& [k, fp32] : variants) {
        SCOPED_TRACE(isa_name(k.isa));
        PackedActivation a;
        prepare_activation(w, x.data(), a, k.prepare_fixed16);
        ASSERT_TRUE(a.fixed.valid);
        EXPECT_EQ(a.fixed.scale, want.fixed.scale);
        EXPECT_EQ(a.fixed.bytes, want.fixed.bytes);
        EXPECT_EQ(a.fixed.total, want.fixed.total);
        expect_fixed16_bounds(k, w, x, a, gemv_int8_fixed16_reference, int8_fixed16_rounding_bound);
        if (::testing::Test::HasFatalFailure()) return;
        std::vector<float> got(rows);
        k.gemv(w, a, 0, rows, got.data());
        if (first.empty()) first = got;
        EXPECT_EQ(got, first) << "kernels differ";
      }
    }
  }
  for (const auto& [k, fp32] : variants) {
    SCOPED_TRACE(isa_name(k.isa));
    // Codes at both ends of INT8 and x = ±32639 (scale 1): exact, over 5000 columns.
    const int64_t cols = 5000;
    PackedMatrix w = packed_weight("int8_pc", 2, cols, 1);
    w.row_scales = {1.0f, 0.5f};
    std::vector<float> x(cols);
    double want[2] = {0.0, 0.0};
    for (int64_t c = 0; c < cols; ++c) {
      w.codes[c] = static_cast<uint8_t>(c % 2 ? -128 : 127);
      w.codes[w.row_bytes() + c] = static_cast<uint8_t>(static_cast<int8_t>(c % 256 - 128));
      x[c] = c % 3 ? 32639.0f : -32639.0f;
      want[0] += (c % 2 ? -128.0 : 127.0) * x[c];
      want[1] += 0.5 * static_cast<double>(c % 256 - 128) * x[c];
    }
    PackedActivation a;
    prepare_activation(w, x.data(), a, k.prepare_fixed16);
    ASSERT_EQ(a.fixed.scale, 1.0f);
    float got[2];
    k.gemv(w, a, 0, 2, got);
    EXPECT_EQ(got[0], static_cast<float>(want[0]));
    EXPECT_EQ(got[1], static_cast<float>(want[1]));
    // Every code -128 and every x -32639 over 4096 columns: the largest lane sums the AVX2 kernel holds.
    PackedMatrix big = packed_weight("int8_pc", 1, 4096, 1);
    big.row_scales = {1.0f};
    std::fill(big.codes.begin(), big.codes.end(), static_cast<uint8_t>(0x80));
    std::vector<float> xb(4096, -32639.0f);
    prepare_activation(big, xb.data(), a, k.prepare_fixed16);
    ASSERT_EQ(a.fixed.scale, 1.0f);
    k.gemv(big, a, 0, 1, got);
    EXPECT_EQ(got[0], static_cast<float>(4096.0 * 128.0 * 32639.0));
    // NaN: the FP32 kernel, bit for bit.
    x[5] = NAN;
    prepare_activation(w, x.data(), a, k.prepare_fixed16);
    EXPECT_FALSE(a.fixed.valid);
    float f32[2];
    fp32.gemv(w, a, 0, 2, f32);
    k.gemv(w, a, 0, 2, got);
    EXPECT_TRUE(std::isnan(got[0]) && std::isnan(f32[0]));
  }
}

}  // namespace
}  // namespace lowbit
