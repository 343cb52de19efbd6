// W4A8 kernels (kernels/w4a8.h): which tables qualify, VNNI bit-identical to the
// reference over awkward shapes (groups of 128 and of 16), and the bound against
// the FP32 product.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/w4a8.h"
#include "model/packed_convert.h"
#include "quant/quantized_weight.h"
#include "test_quant_util.h"

namespace lowbit {
namespace {

using testing::gaussian;  // [rows, cols] N(0, sigma²), seeded

PackedMatrix int4_weight(const char* format, int64_t rows, int64_t cols, uint64_t seed) {
  const std::vector<float> w = gaussian(rows, cols, seed, 0.05f);
  QuantizedWeight q;
  q.format = format;
  q.tensor = std::move(quantize_matrix(format, w.data(), rows, cols)).value();
  return std::move(pack_quantized_weight(q)).value();
}

// The same codes regrouped by 16 (every 16 columns take the scale of their old group).
PackedMatrix regroup16(PackedMatrix w) {
  const int64_t old_ng = w.n_groups(), old_g = w.group;
  w.group = 16;
  const int64_t ng = w.n_groups();
  std::vector<uint16_t> s(static_cast<size_t>(w.rows * ng)), m(w.asymmetric ? s.size() : 0);
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t g = 0; g < ng; ++g) {
      s[r * ng + g] = w.scales[r * old_ng + g * 16 / old_g];
      if (w.asymmetric) m[r * ng + g] = w.mins[r * old_ng + g * 16 / old_g];
    }
  }
  w.scales = s;
  w.mins = m;
  return w;
}

TEST(W4A8, IntegerTablesQualify) {
  bool signed_codes = true;
  EXPECT_TRUE(w4a8_supported(int4_weight("int4_g128_asym", 2, 64, 1), &signed_codes));
  EXPECT_FALSE(signed_codes);
  EXPECT_TRUE(w4a8_supported(int4_weight("int4_g128", 2, 64, 1), &signed_codes));
  EXPECT_TRUE(signed_codes);
  EXPECT_FALSE(w4a8_supported(int4_weight("nvfp4", 2, 64, 1), nullptr));
  EXPECT_FALSE(w4a8_supported(int4_weight("nf4_g64", 2, 64, 1), nullptr));
}

TEST(W4A8, VnniIsBitIdenticalToTheReference) {
  if (!isa_supported(Isa::kAvx512Vnni, detect_cpu_features())) GTEST_SKIP() << "no AVX-512 VNNI";
  for (const char* format : {"int4_g128_asym", "int4_g128"}) {
    for (bool by16 : {false, true}) {
      for (int64_t rows : {1, 3, 17, 33}) {
        for (int64_t cols : {1, 3, 17, 31, 32, 33, 255, 4097}) {
          PackedMatrix w = int4_weight(format, rows, cols, 10 + rows + cols);
          if (by16) w = regroup16(std::move(w));
          ASSERT_TRUE(w.validate().ok());
          for (int64_t tokens : {1, 3}) {
            SCOPED_TRACE(::testing::Message() << format << (by16 ? " g16" : "") << " [" << rows << ", " << cols
                                              << "] x " << tokens);
            const std::vector<float> x = gaussian(tokens, cols, 3 + cols, 1.0f);
            Int8Activations a;
            quantize_activations_int8(x.data(), tokens, cols, w.cols_padded, a);
            const std::vector<int32_t> qsum = group_activation_sums(w, a);
            std::vector<float> want(static_cast<size_t>(tokens * rows)), got(want.size(), NAN);
            w4a8_reference(w, a, qsum, 0, rows, want.data(), rows);
            const int64_t split = rows / 2;
            w4a8_avx512vnni(w, a, qsum, 0, split, got.data(), rows);
            w4a8_avx512vnni(w, a, qsum, split, rows, got.data() + split, rows);
            for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "output " << i;
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

}  // namespace
}  // namespace lowbit
