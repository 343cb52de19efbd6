// Trellis-coded weights at run time (kernels/trellis_kernels.h, PackedKind::kTrellis):
// the packed layout is the stored form unchanged and decodes as the format's
// reference decoder; every tcq entry of the kernel table that this CPU runs
// matches the double-precision reference within its derived bound on awkward
// shapes, every parameter set and group size, and hostile activations; the
// prompt path's dequantized rows are packed_value bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu_features.h"
#include "kernels/kernel_table.h"
#include "kernels/trellis_kernels.h"
#include "model/packed_convert.h"
#include "test_quant_util.h"
#include "test_trellis_util.h"

namespace lowbit {
namespace {

using testing::gaussian;
using testing::random_trellis_weight;

const char* const kFormats[] = {"tcq2_g64", "tcq2p5_g64", "tcq3_g128", "tcq4_g64", "tcq2_g256", "tcq3_g2048"};

PackedMatrix pack(const QuantizedWeight& q) {
  auto p = pack_quantized_weight(q);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return std::move(p).value();
}

std::vector<const LinearKernel*> tcq_entries() {
  std::vector<const LinearKernel*> out;
  const CpuFeatures cpu = detect_cpu_features();
  for (const LinearKernel& k : linear_kernels()) {
    // The rows' predicates (tcq/avx512vnni+vbmi+gfni: CPUID AVX512_VBMI and GFNI) look at the CPU only.
    if (k.layout == WeightLayout::kTrellis && isa_supported(k.isa, cpu) &&
        (k.accepts == nullptr || k.accepts(PackedMatrix{}, cpu))) {
      out.push_back(&k);
    }
  }
  return out;
}

// The packed arrays are the stored ones; packed_value equals trellis_decode_row
// (the format's reference decoder) on every element; the sizes add up.
TEST(TrellisPacked, IsTheStoredFormAndDecodesAsTheFormat) {
  for (const char* format : kFormats) {
    SCOPED_TRACE(format);
    const int64_t rows = 3, cols = 576;
    const QuantizedWeight q = random_trellis_weight(format, rows, cols, 11);
    const PackedMatrix w = pack(q);
    ASSERT_EQ(w.kind, PackedKind::kTrellis);
    ASSERT_EQ(w.cols_padded, cols);
    ASSERT_EQ(w.codes.size(), q.tensor.codes.size());
    EXPECT_EQ(std::memcmp(w.codes.data(), q.tensor.codes.data(), q.tensor.codes.size()), 0);
    ASSERT_EQ(2 * w.scales.size(), q.tensor.scales.size());
    EXPECT_EQ(std::memcmp(w.scales.data(), q.tensor.scales.data(), q.tensor.scales.size()), 0);  // little-endian host
    EXPECT_EQ(w.storage_bytes(), q.tensor.codes.size() + q.tensor.scales.size() + 4);
    const TrellisParams p = parse_trellis_format(format).value();
    EXPECT_EQ(w.trellis().seq_bytes(), p.seq_bytes());
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      trellis_decode_row(p, q.tensor.codes.data() + r * trellis_row_bytes(p, cols),
                         w.scales.data() + r * trellis_row_groups(p, cols), cols, row.data());
      for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(packed_value(w, r, c), row[c]) << "row " << r << " col " << c;
    }
  }
}

// A known answer through the packed path: all-zero codes are state 0 at every step
// (h0 = h1 = 0: table entry 0, -77); all-one codes are state 0xFFF (h0 48: 34,
// h1 15: -31; formats/trellis_code.h).
TEST(TrellisPacked, UniformCodesGiveTheCodebookEntriesOfTheirState) {
  ASSERT_EQ(trellis_state_value(0, 0), -77);
  ASSERT_EQ(trellis_state_value(0xFFF, 0), 34);
  ASSERT_EQ(trellis_state_value(0xFFF, 1), -31);
  for (const char* format : {"tcq2_g64", "tcq2p5_g64"}) {
    const bool pairs = std::strcmp(format, "tcq2p5_g64") == 0;
    for (const uint8_t byte : {uint8_t{0}, uint8_t{0xFF}}) {
      QuantizedWeight q = random_trellis_weight(format, 2, 128, 3);
      std::fill(q.tensor.codes.begin(), q.tensor.codes.end(), byte);
      const PackedMatrix w = pack(q);
      for (int64_t c = 0; c < 128; ++c) {
        const float s = fp16_to_float(w.scales[c / 64]);
        const int v = byte == 0 ? -77 : (pairs && c % 2 == 1 ? -31 : 34);
        ASSERT_EQ(packed_value(w, 0, c), s * static_cast<float>(v)) << format << " byte " << int{byte} << " col " << c;
      }
    }
  }
}

TEST(TrellisPacked, ShapesAndSizesThatDoNotFitAreRefused) {
  QuantizedWeight odd = random_trellis_weight("tcq2_g64", 2, 128, 1);
  odd.tensor.cols = 100;  // not a multiple of 64
  EXPECT_FALSE(pack_quantized_weight(odd).ok());
  QuantizedWeight short_codes = random_trellis_weight("tcq3_g64", 2, 128, 1);
  short_codes.tensor.codes.pop_back();
  auto e = pack_quantized_weight(short_codes);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("tcq3_g64"), std::string::npos) << e.status().message();
  QuantizedWeight bad_name = random_trellis_weight("tcq2_g64", 2, 128, 1);
  bad_name.format = "tcq7_g64";
  EXPECT_FALSE(packed_unsupported_reason(bad_name).empty());
  EXPECT_FALSE(pack_quantized_weight(bad_name).ok());

  PackedMatrix w = pack(random_trellis_weight("tcq2_g64", 2, 128, 1));
  ASSERT_TRUE(w.validate().ok());
  PackedMatrix no_scale = w;
  no_scale.scales.pop_back();
  EXPECT_FALSE(no_scale.validate().ok());
  PackedMatrix bad_k = w;
  bad_k.trellis_step_bits = 6;
  EXPECT_FALSE(bad_k.validate().ok());
  PackedMatrix bad_group = w;
  bad_group.group = 96;
  EXPECT_FALSE(bad_group.validate().ok());
}

// Every tcq entry against gemv_packed_reference (double) within its bound, rows
// split in two ranges as the pool splits them.
void check_entry(const LinearKernel& k, const PackedMatrix& w, const std::vector<float>& x) {
  PackedActivation a;
  prepare_activation(w, x.data(), a, k.fp.prepare_fixed16);
  std::vector<float> want(static_cast<size_t>(w.rows)), got(want.size(), NAN);
  k.fp_reference(w, x.data(), 0, w.rows, want.data());
  const int64_t split = w.rows / 2;
  k.fp.gemv(w, a, 0, split, got.data());
  k.fp.gemv(w, a, split, w.rows, got.data() + split);
  double worst = 0.0;
  for (int64_t r = 0; r < w.rows; ++r) {
    const double bound = k.fp_bound(w, a, r), err = std::fabs(static_cast<double>(got[r]) - want[r]);
    ASSERT_LE(err, bound) << "row " << r << ": " << got[r] << " vs " << want[r];
    worst = std::max(worst, err / bound);
  }
  // The bound must not be vacuous: the SIMD kernels' x quantization gives errors
  // of a visible fraction of it, never more than it.
  EXPECT_LE(worst, 1.0);
}

TEST(TrellisKernels, EveryLevelMatchesTheReferenceOnAwkwardShapes) {
  const auto entries = tcq_entries();
  ASSERT_FALSE(entries.empty());
  for (const LinearKernel* k : entries) {
    for (const char* format : kFormats) {
      for (int64_t rows : {1, 3, 17}) {
        for (int64_t cols : {64, 576, 1536, 4096 + 64}) {
          SCOPED_TRACE(::testing::Message() << k->name << " " << format << " [" << rows << ", " << cols << "]");
          const PackedMatrix w = pack(random_trellis_weight(format, rows, cols, 100 + rows * cols));
          check_entry(*k, w, gaussian(1, cols, 7 + cols, 1.0f));
          if (::testing::Test::HasFatalFailure()) return;
        }
      }
    }
  }
}

// The SIMD preparations (AVX2, AVX-512) equal the portable one byte for byte:
// scale, the lo / hi / int16 planes and the group sums, on ordinary, wide-range
// (2^100), all-zero and non-finite x, for every group size of kFormats.
TEST(TrellisKernels, SimdPreparationsEqualThePortableOne) {
  std::vector<std::pair<const char*, Fixed16Prepare>> preps;
  const CpuFeatures cpu = detect_cpu_features();
  if (isa_supported(Isa::kAvx2, cpu)) preps.push_back({"avx2", prepare_trellis_fixed16_avx2});
  if (isa_supported(Isa::kAvx512, cpu)) preps.push_back({"avx512", prepare_trellis_fixed16_avx512});
  if (preps.empty()) GTEST_SKIP() << "no AVX2 on this CPU: only the portable preparation runs here";
  for (const char* format : kFormats) {
    const int64_t cols = 4096;
    const PackedMatrix w = pack(random_trellis_weight(format, 1, cols, 3));
    std::vector<float> wide = gaussian(1, cols, 9, 1.0f);
    for (int64_t c = 0; c < cols; ++c) wide[c] *= std::ldexp(1.0f, static_cast<int>(c % 101) - 50);
    std::vector<float> nan_x = gaussian(1, cols, 4, 1.0f);
    nan_x[4000] = std::numeric_limits<float>::quiet_NaN();
    for (const std::vector<float>& x :
         {gaussian(1, cols, 2, 3.0f), wide, std::vector<float>(static_cast<size_t>(cols), 0.0f), nan_x}) {
      PackedActivation want;
      prepare_activation(w, x.data(), want, prepare_trellis_fixed16);
      for (const auto& [name, prep] : preps) {
        SCOPED_TRACE(::testing::Message() << name << " " << format);
        PackedActivation got;
        prepare_activation(w, x.data(), got, prep);
        ASSERT_EQ(got.fixed.valid, want.fixed.valid);
        if (!want.fixed.valid) continue;
        EXPECT_EQ(got.fixed.scale, want.fixed.scale);
        EXPECT_EQ(got.fixed.bytes, want.fixed.bytes);
        EXPECT_EQ(got.fixed.group_sums, want.fixed.group_sums);
      }
    }
  }
}

// Hostile x: a range of 2^100 between elements (the 16-bit fixed point keeps the
// large ones; the bound charges half a step per element), zeros, and a single
// huge value. Non-finite x (one NaN, one infinity) makes every kernel run FP32:
// NaN rows stay NaN and an infinity gives the reference's infinity.
TEST(TrellisKernels, HostileActivations) {
  for (const LinearKernel* k : tcq_entries()) {
    for (const char* format : {"tcq2_g64", "tcq2p5_g128", "tcq4_g256"}) {
      SCOPED_TRACE(::testing::Message() << k->name << " " << format);
      const int64_t rows = 5, cols = 1536;
      const PackedMatrix w = pack(random_trellis_weight(format, rows, cols, 5));
      std::vector<float> wide = gaussian(1, cols, 9, 1.0f);
      for (int64_t c = 0; c < cols; ++c) wide[c] *= std::ldexp(1.0f, static_cast<int>(c % 101) - 50);
      check_entry(*k, w, wide);
      std::vector<float> spike(static_cast<size_t>(cols), 0.0f);
      spike[777] = 3e38f;
      check_entry(*k, w, spike);
      check_entry(*k, w, std::vector<float>(static_cast<size_t>(cols), 0.0f));
      if (::testing::Test::HasFatalFailure()) return;

      for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
        std::vector<float> x = gaussian(1, cols, 10, 1.0f);
        x[100] = bad;
        PackedActivation a;
        prepare_activation(w, x.data(), a, k->fp.prepare_fixed16);
        EXPECT_FALSE(a.fixed.valid);
        std::vector<float> got(rows), want(rows);
        k->fp.gemv(w, a, 0, rows, got.data());
        gemv_packed_reference(w, x.data(), 0, rows, want.data());
        for (int64_t r = 0; r < rows; ++r) {
          if (std::isnan(want[r])) {
            EXPECT_TRUE(std::isnan(got[r])) << "row " << r;
          } else {
            EXPECT_EQ(got[r], want[r]) << "row " << r;  // +-inf (value * scale * inf)
          }
        }
      }
    }
  }
}

// The benchmark's 8-bit-x variant of the VBMI GEMV (x as its hi byte: error up to
// 128 xs per element, plus the hi/lo split's 0.5 xs, on top of the FP32 rounding).
TEST(TrellisKernels, HiOnlyVariantWithinItsCoarserBound) {
  const CpuFeatures cpu = detect_cpu_features();
  if (!isa_supported(Isa::kAvx512Vnni, cpu) || !cpu.avx512vbmi || !cpu.gfni) GTEST_SKIP() << "no AVX-512 VNNI + VBMI + GFNI";
  for (const char* format : {"tcq2_g64", "tcq2p5_g128", "tcq3_g2048"}) {
    SCOPED_TRACE(format);
    const PackedMatrix w = pack(random_trellis_weight(format, 9, 4160, 8));
    const std::vector<float> x = gaussian(1, 4160, 12, 1.0f);
    PackedActivation a;
    prepare_activation(w, x.data(), a, prepare_trellis_fixed16);
    ASSERT_TRUE(a.fixed.valid);
    std::vector<float> got(9), want(9);
    trellis_gemv_avx512vbmi_hi_only(w, a, 0, 9, got.data());
    gemv_packed_reference(w, x.data(), 0, 9, want.data());
    for (int64_t r = 0; r < 9; ++r) {
      double mag = 0.0, scales = 0.0;  // sum_c |W[r, c]|, sum_c |s_g(c)|
      for (int64_t c = 0; c < w.cols; ++c) {
        mag += std::fabs(static_cast<double>(packed_value(w, r, c)));
        scales += std::fabs(static_cast<double>(fp16_to_float(w.scales[r * w.n_groups() + c / w.group])));
      }
      // The rounding bound is for 256 hi + lo; 256 hi differs from it by <= 128 per
      // element, (value + 126) <= 252 times that at the same FP32 depth.
      const double depth = static_cast<double>(w.cols / 64 + w.n_groups() + 12) * 0x1.0p-24;
      const double bound = 128.51 * a.fixed.scale * mag + trellis_fixed16_rounding_bound(w, a, r) +
                           depth * a.fixed.scale * 128.0 * 252.0 * scales;
      ASSERT_LE(std::fabs(static_cast<double>(got[r]) - want[r]), bound) << "row " << r;
    }
  }
}

// The prompt path (dequantize_rows, then sgemm) reads exactly packed_value.
TEST(TrellisKernels, DequantizedRowsArePackedValueBitForBit) {
  for (const LinearKernel* k : tcq_entries()) {
    for (const char* format : kFormats) {
      SCOPED_TRACE(::testing::Message() << k->name << " " << format);
      const int64_t rows = 7, cols = 4096 + 64;
      const PackedMatrix w = pack(random_trellis_weight(format, rows, cols, 21));
      std::vector<float> out(static_cast<size_t>(rows * cols), NAN);
      k->fp.dequantize_rows(w, 0, 3, out.data());
      k->fp.dequantize_rows(w, 3, rows, out.data() + 3 * cols);
      for (int64_t i = 0; i < rows * cols; ++i) {
        const float ref = packed_value(w, i / cols, i % cols);
        ASSERT_EQ(std::memcmp(&out[i], &ref, 4), 0) << "element " << i << ": " << out[i] << " vs " << ref;
      }
    }
  }
}

// The scalar state walk of the kernels equals trellis_state at every step of
// every parameter set (random strings, so the wrap is exercised).
TEST(TrellisKernels, SequenceValuesFollowTheStates) {
  for (const char* format : {"tcq2_g64", "tcq2p5_g64", "tcq3_g64", "tcq4_g64"}) {
    const TrellisParams p = parse_trellis_format(format).value();
    const QuantizedWeight q = random_trellis_weight(format, 1, 64 * 50, 4);
    int8_t v[kTrellisSeqLen];
    for (int s = 0; s < 50; ++s) {
      const uint8_t* seq = q.tensor.codes.data() + s * p.seq_bytes();
      trellis_sequence_values(p, seq, v);
      for (int i = 0; i < kTrellisSeqLen; ++i) {
        const uint32_t state = trellis_state(p, seq, i / p.values_per_step);
        ASSERT_EQ(v[i], trellis_state_value(state, i % p.values_per_step)) << format << " seq " << s << " i " << i;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
