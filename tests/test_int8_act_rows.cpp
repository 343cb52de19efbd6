// Per-token INT8 activation quantization in pieces (kernels/w8a8.h
// quantize_rows_int8_*, w4a8.h group_activation_sums_rows): every ISA variant,
// run on split token ranges as the thread pool does, gives the reference's
// bytes, scales and group sums.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/w4a8.h"
#include "kernels/w8a8.h"
#include "test_quant_util.h"

namespace lowbit {
namespace {

using testing::gaussian;  // [rows, cols] N(0, sigma²), seeded

// Token 0 Gaussian, token 1 all zero, token 2 halfway cases (amax 127: s = 1,
// so x = k + 0.5 must round to even), token 3 Gaussian with one huge outlier.
std::vector<float> awkward_tokens(int64_t cols, uint64_t seed) {
  std::vector<float> x = gaussian(4, cols, seed, 1.0f);
  for (int64_t c = 0; c < cols; ++c) {
    x[cols + c] = 0.0f;
    x[2 * cols + c] = static_cast<float>(c % 254) - 126.5f;
  }
  x[2 * cols] = 127.0f;
  x[3 * cols + cols / 2] = -1e30f;
  return x;
}

// The quantizers this CPU runs: the portable one, AVX2, and with AVX-512 VNNI the AVX-512 one.
std::vector<QuantizeRowsFn> supported_variants() {
  std::vector<QuantizeRowsFn> variants = {quantize_rows_int8_generic};
  if (isa_supported(Isa::kAvx2, detect_cpu_features())) variants.push_back(quantize_rows_int8_avx2);
  if (isa_supported(Isa::kAvx512Vnni, detect_cpu_features())) variants.push_back(quantize_rows_int8_avx512);
  return variants;
}

TEST(Int8ActRows, EveryIsaGivesTheReferenceBytes) {
  const std::vector<QuantizeRowsFn> variants = supported_variants();
  for (int64_t cols : {1, 3, 17, 31, 32, 33, 255, 4097}) {
    const int64_t cols_padded = (cols + 31) / 32 * 32;
    const std::vector<float> x = awkward_tokens(cols, cols);
    Int8Activations want;
    quantize_activations_int8(x.data(), 4, cols, cols_padded, want);
    for (size_t v = 0; v < variants.size(); ++v) {
      SCOPED_TRACE(::testing::Message() << "variant " << v << " cols " << cols);
      Int8Activations got;
      reserve_int8_activations(4, cols_padded, got);
      variants[v](x.data(), cols, 0, 1, got);
      variants[v](x.data(), cols, 1, 4, got);
      ASSERT_EQ(got.scale, want.scale);
      for (size_t i = 0; i < want.u8.size(); ++i) {
        ASSERT_EQ(got.u8[i], want.u8[i]) << "token " << i / cols_padded << " column " << i % cols_padded;
      }
    }
  }
}

// A token with a NaN or an infinity (in the vector part or the tail) gets a NaN
// scale and q = 0, as in the reference; the other tokens are unaffected. Every variant
// (the AVX-512 one gave a finite scale for such a token until this test covered it).
TEST(Int8ActRows, NonFiniteTokensMatchTheReferenceAtEveryIsa) {
  const std::vector<QuantizeRowsFn> variants = supported_variants();
  ASSERT_FALSE(variants.empty());
  for (int64_t cols : {3, 17, 33, 40}) {
    const int64_t cols_padded = (cols + 31) / 32 * 32;
    std::vector<float> x = awkward_tokens(cols, cols);
    x[0 * cols + 1] = NAN;              // vector part (or tail for cols 3)
    x[1 * cols + cols - 1] = INFINITY;  // tail for cols 17, 33; a masked lane for AVX-512
    x[3 * cols + 2] = -INFINITY;
    Int8Activations want;
    quantize_activations_int8(x.data(), 4, cols, cols_padded, want);
    EXPECT_TRUE(std::isnan(want.scale[0]) && std::isnan(want.scale[1]) && std::isnan(want.scale[3]));
    for (size_t v = 0; v < variants.size(); ++v) {
      SCOPED_TRACE(::testing::Message() << "variant " << v << " cols " << cols);
      Int8Activations got;
      reserve_int8_activations(4, cols_padded, got);
      variants[v](x.data(), cols, 0, 4, got);
      for (int t = 0; t < 4; ++t) {
        if (std::isnan(want.scale[t])) {
          EXPECT_TRUE(std::isnan(got.scale[t])) << "token " << t;
        } else {
          EXPECT_EQ(got.scale[t], want.scale[t]) << "token " << t;
        }
      }
      EXPECT_EQ(got.u8, want.u8);
    }
  }
}

TEST(Int8ActRows, HalfwayCasesRoundToEven) {
  const std::vector<float> x = awkward_tokens(8, 1);
  for (QuantizeRowsFn quantize : supported_variants()) {
    Int8Activations a;
    reserve_int8_activations(4, 32, a);
    quantize(x.data(), 8, 0, 4, a);
    ASSERT_EQ(a.scale[2], 1.0f);
    // x = 127, -125.5, -124.5, -123.5, ... -> 127, -126, -124, -124, -122, -122, -120, -120
    const int want[8] = {127, -126, -124, -124, -122, -122, -120, -120};
    for (int c = 0; c < 8; ++c) EXPECT_EQ(static_cast<int>(a.u8[2 * 32 + c]) - 128, want[c]) << c;
  }
}

TEST(Int8ActRows, GroupSumsByTokenRanges) {
  PackedMatrix w;
  w.kind = PackedKind::kLut4;
  w.cols = w.cols_padded = 96;
  for (int group : {16, 32, 64}) {
    w.group = group;
    const std::vector<float> x = awkward_tokens(96, 3);
    Int8Activations a;
    quantize_activations_int8(x.data(), 4, 96, 96, a);
    const std::vector<int32_t> all = group_activation_sums(w, a);
    ASSERT_EQ(all.size(), static_cast<size_t>(4 * w.n_groups()));
    std::vector<int32_t> split(all.size(), -1);
    group_activation_sums_rows(w, a, 0, 3, split.data());
    group_activation_sums_rows(w, a, 3, 4, split.data());
    EXPECT_EQ(split, all);
    for (int64_t t = 0; t < 4; ++t) {  // against the definition, column by column
      for (int64_t g = 0; g < w.n_groups(); ++g) {
        int32_t s = 0;
        for (int64_t c = g * group; c < std::min<int64_t>(96, (g + 1) * group); ++c) s += a.u8[t * 96 + c] - 128;
        EXPECT_EQ(all[t * w.n_groups() + g], s) << "token " << t << " group " << g;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
