// PackedLinear::gemv_shared_input (q/k/v and gate/up of one decode token in one
// pass): each layer's output is bit for bit what its own forward() gives (the
// same kernel on the same rows per thread), for layers of different heights,
// with biases, on 1-3 threads, at every ISA; and shares_decode_input refuses
// layers whose prepared input would differ.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "model/packed_linear.h"
#include "test_int8_act_util.h"

namespace lowbit {
namespace {

using testing::gaussian;
using testing::packed_weight;

std::unique_ptr<PackedLinear> linear(const char* format, int64_t rows, int64_t cols, uint64_t seed, Isa isa,
                                     bool with_bias) {
  std::vector<float> bias;
  if (with_bias) bias = gaussian(1, rows, seed + 1, 0.5f);
  auto l = PackedLinear::create(packed_weight(format, rows, cols, seed), std::move(bias), format, LinearActivation{}, isa);
  EXPECT_TRUE(l.ok()) << l.status().message();
  return std::move(*l);
}

TEST(PackedSharedInput, EachOutputEqualsItsOwnForward) {
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni}) {
    if (!isa_supported(isa, detect_cpu_features())) continue;
    for (const char* format : {"int4_g128_asym", "int4_g128", "nvfp4", "int8_pc", "bf16"}) {
      for (const int64_t cols : {int64_t{32}, int64_t{300}, int64_t{2048}}) {
        SCOPED_TRACE(::testing::Message() << format << " " << isa_name(isa) << " cols " << cols);
        // q/k/v-like heights: a tall one, then two short ones (odd, to split row pairs).
        std::vector<std::unique_ptr<PackedLinear>> layers;
        layers.push_back(linear(format, 97, cols, 11, isa, true));
        layers.push_back(linear(format, 33, cols, 12, isa, false));
        layers.push_back(linear(format, 17, cols, 13, isa, true));
        std::vector<const PackedLinear*> ptrs;
        for (const auto& l : layers) ptrs.push_back(l.get());
        for (const PackedLinear* l : ptrs) ASSERT_TRUE(ptrs[0]->shares_decode_input(*l));
        const std::vector<float> x = gaussian(1, cols, 5 + cols, 1.0f);
        for (int threads : {1, 2, 3}) {
          ThreadPool pool(threads);
          std::vector<std::vector<float>> want(ptrs.size()), got(ptrs.size());
          std::vector<float*> outs;
          for (size_t i = 0; i < ptrs.size(); ++i) {
            want[i].assign(ptrs[i]->out_features(), 0.0f);
            got[i].assign(ptrs[i]->out_features(), -1.0f);
            ptrs[i]->forward(x.data(), 1, want[i].data(), pool);
            outs.push_back(got[i].data());
          }
          PackedLinear::gemv_shared_input(ptrs, x.data(), outs, pool);
          for (size_t i = 0; i < ptrs.size(); ++i) {
            for (size_t r = 0; r < want[i].size(); ++r) {
              ASSERT_EQ(got[i][r], want[i][r]) << "layer " << i << " row " << r << ", " << threads << " threads";
            }
          }
        }
      }
    }
  }
}

TEST(PackedSharedInput, OnlyLayersWithTheSamePreparedInputShare) {
  const Isa isa = active_isa();
  const auto base = linear("int4_g128_asym", 8, 256, 1, isa, false);
  EXPECT_TRUE(base->shares_decode_input(*linear("int4_g128_asym", 24, 256, 2, isa, true)));
  EXPECT_FALSE(base->shares_decode_input(*linear("int4_g128_asym", 8, 288, 3, isa, false)));  // columns
  EXPECT_FALSE(base->shares_decode_input(*linear("int4_g128", 8, 256, 4, isa, false)));       // no minimums
  EXPECT_FALSE(base->shares_decode_input(*linear("nvfp4", 8, 256, 5, isa, false)));           // groups, table
  EXPECT_FALSE(base->shares_decode_input(*linear("int8_pc", 8, 256, 6, isa, false)));         // layout
  if (isa > Isa::kGeneric) {  // other kernels
    EXPECT_FALSE(base->shares_decode_input(*linear("int4_g128_asym", 8, 256, 7, Isa::kGeneric, false)));
  }
  auto int8_act = linear("int4_g128_asym", 8, 256, 8, isa, false)->with_activation({ActFormat::kInt8, {}, 0}, isa).value();
  EXPECT_FALSE(base->shares_decode_input(*int8_act));
  EXPECT_FALSE(int8_act->shares_decode_input(*base));
}

}  // namespace
}  // namespace lowbit
