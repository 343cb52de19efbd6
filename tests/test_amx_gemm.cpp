// AMX-INT8 GEMMs (kernels/amx_gemm.h): W8A8 and W4A8 bit-identical to their
// exact references over awkward shapes (token, row and column tails, row ranges
// that split a 32-row block, groups of 32 / 64 / 128, signed and asymmetric
// INT4), the activation layout, and PackedLinear's dispatch (AMX for prompts
// gives the same bits as the VNNI path). Skipped where AMX is not usable.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/amx_gemm.h"
#include "kernels/w4a8.h"
#include "model/packed_linear.h"
#include "core/thread_pool.h"
#include "test_int8_act_util.h"
#include "test_quant_util.h"

namespace lowbit {
namespace {

using testing::gaussian;  // [rows, cols] N(0, sigma²), seeded

bool have_amx() { return isa_supported(Isa::kAmx, detect_cpu_features()); }
constexpr const char* kNoAmx = "AMX-INT8 not usable here (CPU, XCR0 or the Linux XTILEDATA permission)";

using testing::packed_weight;  // format, rows, cols, seed -> packed
using testing::regroup;        // the same codes, another group size

void expect_same(const std::vector<float>& got, const std::vector<float>& want, int64_t rows) {
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], want[i]) << "token " << i / rows << " row " << i % rows;
  }
}

const int64_t kTokens[] = {1, 3, 17, 33, 64};
const int64_t kRows[] = {1, 17, 31, 33, 255};
const int64_t kCols[] = {32, 96, 4097};

// q at token t, column c, through the tile addressing the kernels use.
int q_at(const AmxActivations& xa, int64_t t, int64_t c) {
  return xa.tile(t - t % 16, c - c % 64)[(t % 16) * 64 + c % 64];
}

TEST(AmxGemm, ActivationLayoutIsSignedTiledAndZeroPadded) {
  const int64_t tokens = 19, cols = 150, cols_padded = 160;
  const std::vector<float> x = gaussian(tokens, cols, 5, 1.0f);
  Int8Activations a;
  quantize_activations_int8(x.data(), tokens, cols, cols_padded, a);
  AmxActivations xa;
  prepare_amx_activations(a, xa);
  EXPECT_EQ(xa.tokens, tokens);
  EXPECT_EQ(xa.tokens_padded, 32);
  EXPECT_EQ(xa.k_padded, 192);
  for (int64_t t = 0; t < 32; ++t) {
    for (int64_t c = 0; c < 192; ++c) {
      const int want = t < tokens && c < cols_padded ? static_cast<int>(a.u8[t * cols_padded + c]) - 128 : 0;
      ASSERT_EQ(q_at(xa, t, c), want) << "token " << t << " column " << c;
    }
  }
  // Tiles are 1 KiB apart along K, 16 x k_padded bytes apart along tokens.
  EXPECT_EQ(xa.tile(0, 64) - xa.tile(0, 0), 1024);
  EXPECT_EQ(xa.tile(16, 0) - xa.tile(0, 0), 16 * 192);
  EXPECT_EQ(xa.scale, a.scale);
  AmxActivations split;  // by token ranges, as the threads fill it
  reserve_amx_activations(tokens, cols_padded, split);
  amx_activation_rows(a, 7, tokens, split);
  amx_activation_rows(a, 0, 7, split);
  for (int64_t t = 0; t < 32; ++t) {
    for (int64_t c = 0; c < 192; ++c) ASSERT_EQ(q_at(split, t, c), q_at(xa, t, c)) << t << ", " << c;
  }
  EXPECT_EQ(split.scale, a.scale);
}

TEST(AmxGemm, W8A8IsBitIdenticalToTheReference) {
  if (!have_amx()) GTEST_SKIP() << kNoAmx;
  for (int64_t rows : kRows) {
    for (int64_t cols : kCols) {
      const PackedMatrix w = packed_weight("int8_pc", rows, cols, 200 + rows + cols);
      const std::vector<int32_t> rowsum = int8_row_sums(w);
      for (int64_t tokens : kTokens) {
        SCOPED_TRACE(::testing::Message() << "[" << rows << ", " << cols << "] x " << tokens);
        const std::vector<float> x = gaussian(tokens, cols, 9 + cols + tokens, 1.0f);
        Int8Activations a;
        quantize_activations_int8(x.data(), tokens, cols, w.cols_padded, a);
        AmxActivations xa;
        prepare_amx_activations(a, xa);
        std::vector<float> want(static_cast<size_t>(tokens * rows)), got(want.size(), NAN);
        w8a8_reference(w, rowsum, a, 0, rows, want.data(), rows);
        const int64_t split = rows / 2;  // two row ranges, the first one ending inside a 32-row block
        w8a8_amx(w, xa, 0, split, got.data(), rows);
        w8a8_amx(w, xa, split, rows, got.data() + split, rows);
        expect_same(got, want, rows);
      }
    }
  }
}

TEST(AmxGemm, W4A8IsBitIdenticalToTheReference) {
  if (!have_amx()) GTEST_SKIP() << kNoAmx;
  for (const char* format : {"int4_g128_asym", "int4_g128"}) {
    for (int group : {128, 64, 32}) {
      for (int64_t rows : kRows) {
        for (int64_t cols : kCols) {
          const PackedMatrix w = regroup(packed_weight(format, rows, cols, 30 + rows + cols), group);
          ASSERT_TRUE(w.validate().ok());
          ASSERT_TRUE(w4a8_amx_supported(w));
          for (int64_t tokens : kTokens) {
            // The int64 reference is slow: the largest matrix (two row blocks) runs up to 33 tokens.
            if (rows * cols > 100000 && tokens > 33) continue;
            SCOPED_TRACE(::testing::Message() << format << " g" << group << " [" << rows << ", " << cols << "] x "
                                              << tokens);
            const std::vector<float> x = gaussian(tokens, cols, 4 + cols + tokens, 1.0f);
            Int8Activations a;
            quantize_activations_int8(x.data(), tokens, cols, w.cols_padded, a);
            AmxActivations xa;
            prepare_amx_activations(a, xa);
            const std::vector<int32_t> qsum = group_activation_sums(w, a);
            std::vector<float> want(static_cast<size_t>(tokens * rows)), got(want.size(), NAN);
            w4a8_reference(w, a, qsum, 0, rows, want.data(), rows);
            const int64_t split = rows / 2;
            w4a8_amx(w, xa, qsum, 0, split, got.data(), rows);
            w4a8_amx(w, xa, qsum, split, rows, got.data() + split, rows);
            expect_same(got, want, rows);
          }
        }
      }
    }
  }
}

// q = +-127 in every column of a long row: the int32 sums reach their largest size.
TEST(AmxGemm, ExtremeActivationsStayExact) {
  if (!have_amx()) GTEST_SKIP() << kNoAmx;
  const int64_t rows = 40, cols = 8191;
  for (const char* format : {"int8_pc", "int4_g128_asym", "int4_g128"}) {
    SCOPED_TRACE(format);
    const PackedMatrix w = packed_weight(format, rows, cols, 17);
    const Int8Activations a = testing::extreme_int8_activations(cols, w.cols_padded);
    AmxActivations xa;
    prepare_amx_activations(a, xa);
    std::vector<float> want(static_cast<size_t>(a.tokens * rows)), got(want.size(), NAN);
    if (w.kind == PackedKind::kInt8Row) {
      w8a8_reference(w, int8_row_sums(w), a, 0, rows, want.data(), rows);
      w8a8_amx(w, xa, 0, rows, got.data(), rows);
    } else {
      const std::vector<int32_t> qsum = group_activation_sums(w, a);
      w4a8_reference(w, a, qsum, 0, rows, want.data(), rows);
      w4a8_amx(w, xa, qsum, 0, rows, got.data(), rows);
    }
    expect_same(got, want, rows);
  }
}

TEST(AmxGemm, GroupsOf16AreLeftToVnni) {
  EXPECT_TRUE(w4a8_amx_supported(packed_weight("int4_g128", 2, 64, 1)));
  EXPECT_FALSE(w4a8_amx_supported(regroup(packed_weight("int4_g128", 2, 64, 1), 16)));
  EXPECT_FALSE(w4a8_amx_supported(packed_weight("nvfp4", 2, 64, 1)));
}

// PackedLinear with ISA amx runs prompts on AMX and short calls on VNNI; both
// give the bits of the VNNI-only layer.
TEST(AmxGemm, PackedLinearDispatchMatchesVnni) {
  if (!have_amx()) GTEST_SKIP() << kNoAmx;
  ThreadPool pool(2);
  for (const char* format : {"int8_pc", "int4_g128_asym", "int4_g128"}) {
    const int64_t rows = 97, cols = 300;
    const LinearActivation int8{ActFormat::kInt8, {}, 0};
    auto amx = PackedLinear::create(packed_weight(format, rows, cols, 7), {}, format, int8, Isa::kAmx);
    auto vnni = PackedLinear::create(packed_weight(format, rows, cols, 7), {}, format, int8, Isa::kAvx512Vnni);
    ASSERT_TRUE(amx.ok() && vnni.ok());
    EXPECT_NE((*amx)->kernel_name().find("amx"), std::string::npos) << (*amx)->kernel_name();
    EXPECT_EQ((*vnni)->kernel_name().find("amx"), std::string::npos) << (*vnni)->kernel_name();
    const int64_t min_tokens = (*amx)->kernel().gemm_min_tokens;
    ASSERT_GT(min_tokens, 1);
    for (int64_t tokens : {int64_t{1}, min_tokens - 1, min_tokens, int64_t{70}}) {
      SCOPED_TRACE(::testing::Message() << format << " x " << tokens);
      const std::vector<float> x = gaussian(tokens, cols, 11 + tokens, 1.0f);
      std::vector<float> got(static_cast<size_t>(tokens * rows), NAN), want(got.size(), NAN);
      (*amx)->forward(x.data(), tokens, got.data(), pool);
      (*vnni)->forward(x.data(), tokens, want.data(), pool);
      expect_same(got, want, rows);
    }
  }
}

}  // namespace
}  // namespace lowbit
