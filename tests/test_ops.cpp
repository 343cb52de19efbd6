// Forward-pass building blocks against closed-form answers, and the two RoPE
// layouts against each other.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <iterator>
#include <random>
#include <thread>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "model/ops.h"

namespace lowbit {
namespace {

TEST(Ops, RmsNorm) {
  const float x[4] = {1.0f, -1.0f, 1.0f, -1.0f};  // mean square 1
  const float w[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  float out[4];
  rms_norm(x, w, 4, 0.0f, out);
  EXPECT_FLOAT_EQ(out[0], 1.0f);
  EXPECT_FLOAT_EQ(out[1], -2.0f);
  EXPECT_FLOAT_EQ(out[3], -4.0f);
}

TEST(Ops, RopeRotatesByPositionTimesFrequency) {
  ModelConfig c;
  c.head_dim = 4;
  c.rope_theta = 100.0;
  const auto inv = rope_inverse_frequencies(c, {});
  ASSERT_EQ(inv.size(), 2u);
  EXPECT_DOUBLE_EQ(inv[0], 1.0);
  EXPECT_DOUBLE_EQ(inv[1], 0.1);  // 100^(-2/4)
  float v[4] = {1.0f, 0.0f, 1.0f, 0.0f};
  apply_rope(v, 1, 4, 3, RopeLayout::kAdjacentPairs, inv);
  EXPECT_NEAR(v[0], std::cos(3.0), 1e-6);
  EXPECT_NEAR(v[1], std::sin(3.0), 1e-6);
  EXPECT_NEAR(v[2], std::cos(0.3), 1e-6);
  EXPECT_NEAR(v[3], std::sin(0.3), 1e-6);
}

TEST(Ops, HalfSplitEqualsAdjacentAfterPermutation) {
  // The HF permutation maps adjacent pair (2i, 2i+1) to (i, i + d/2).
  ModelConfig c;
  c.head_dim = 8;
  const auto inv = rope_inverse_frequencies(c, {});
  std::mt19937 rng(1);
  std::normal_distribution<float> n01;
  float adj[16], half[16];
  for (float& x : adj) x = n01(rng);
  for (int h = 0; h < 2; ++h) {
    for (int i = 0; i < 4; ++i) {
      half[h * 8 + i] = adj[h * 8 + 2 * i];
      half[h * 8 + i + 4] = adj[h * 8 + 2 * i + 1];
    }
  }
  apply_rope(adj, 2, 8, 17, RopeLayout::kAdjacentPairs, inv);
  apply_rope(half, 2, 8, 17, RopeLayout::kHalfSplit, inv);
  for (int h = 0; h < 2; ++h) {
    for (int i = 0; i < 4; ++i) {
      EXPECT_FLOAT_EQ(half[h * 8 + i], adj[h * 8 + 2 * i]);
      EXPECT_FLOAT_EQ(half[h * 8 + i + 4], adj[h * 8 + 2 * i + 1]);
    }
  }
}

TEST(Ops, RopeOfQueryAndKeyTogetherEqualsEachAlone) {
  // apply_rope_qk computes each angle once for both vectors: the same bits as two calls.
  ModelConfig c;
  c.head_dim = 8;
  const auto inv = rope_inverse_frequencies(c, {});
  std::mt19937 rng(2);
  std::normal_distribution<float> n01;
  for (RopeLayout layout : {RopeLayout::kAdjacentPairs, RopeLayout::kHalfSplit}) {
    float q[24], k[8];  // 3 query heads, 1 KV head
    for (float& x : q) x = n01(rng);
    for (float& x : k) x = n01(rng);
    float q_alone[24], k_alone[8], q_only[24];
    std::copy(std::begin(q), std::end(q), q_alone);
    std::copy(std::begin(k), std::end(k), k_alone);
    std::copy(std::begin(q), std::end(q), q_only);
    apply_rope(q_alone, 3, 8, 1234, layout, inv);
    apply_rope(k_alone, 1, 8, 1234, layout, inv);
    apply_rope_qk(q, 3, k, 1, 8, 1234, layout, inv);
    apply_rope_qk(q_only, 3, nullptr, 0, 8, 1234, layout, inv);
    for (int i = 0; i < 24; ++i) {
      EXPECT_EQ(q[i], q_alone[i]) << i;
      EXPECT_EQ(q_only[i], q_alone[i]) << i;
    }
    for (int i = 0; i < 8; ++i) EXPECT_EQ(k[i], k_alone[i]) << i;
  }
}

TEST(Ops, Llama3ScalingBands) {
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.0;
  c.rope_scaling.llama3 = true;
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position = 8192;
  ModelConfig plain = c;
  plain.rope_scaling.llama3 = false;
  const auto scaled = rope_inverse_frequencies(c, {});
  const auto base = rope_inverse_frequencies(plain, {});
  EXPECT_DOUBLE_EQ(scaled[0], base[0]);              // highest frequency: unchanged
  EXPECT_DOUBLE_EQ(scaled[63], base[63] / 8.0);      // lowest frequency: divided by factor
  for (size_t i = 0; i < base.size(); ++i) {
    EXPECT_LE(scaled[i], base[i] * (1 + 1e-12));
    EXPECT_GE(scaled[i], base[i] / 8.0 * (1 - 1e-12));
  }
}

TEST(Ops, SoftmaxAndSwiglu) {
  float x[3] = {0.0f, std::log(2.0f), std::log(5.0f)};
  softmax(x, 3);
  EXPECT_NEAR(x[0], 0.125, 1e-7);
  EXPECT_NEAR(x[2], 0.625, 1e-7);
  float g[2] = {0.0f, 2.0f};
  const float u[2] = {3.0f, 0.5f};
  swiglu(g, u, 2);
  EXPECT_FLOAT_EQ(g[0], 0.0f);
  EXPECT_NEAR(g[1], 2.0 / (1.0 + std::exp(-2.0)) * 0.5, 1e-6);
}

TEST(Core, Fp16RoundTripAllCodes) {
  for (uint32_t code = 0; code < 65536; ++code) {
    const uint16_t h = static_cast<uint16_t>(code);
    const float f = fp16_to_float(h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_float(float_to_fp16(f))));
      continue;
    }
    ASSERT_EQ(float_to_fp16(f), h) << "code " << code;
  }
  EXPECT_EQ(float_to_fp16(65520.0f), 0x7c00);  // rounds up past max to inf
  EXPECT_EQ(float_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16(1.0f + 1.0f / 2048.0f), 0x3c00);  // tie to even (down)
  EXPECT_EQ(float_to_fp16(1.0f + 3.0f / 2048.0f), 0x3c02);  // tie to even (up)
  EXPECT_EQ(float_to_fp16(2.98023223876953125e-08f), 0x0000);  // half the smallest subnormal: tie to 0
}

TEST(Core, Bf16RoundingTiesToEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
}

TEST(Core, ThreadPoolCoversRangeOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 100}) {
      std::vector<int> hits(n, 0);
      pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) hits[i]++;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << "n " << n << " i " << i;
    }
  }
}

// Back-to-back calls exercise the spinning hand-off; the sleep past the spin
// budget makes the workers block in the futex wait, and the next calls must wake
// them. Every index is covered exactly once in every call.
TEST(Core, ThreadPoolHandsOffRepeatedlyAndAfterBlocking) {
  ThreadPool pool(3);
  std::vector<int> hits(64, 0);
  for (int round = 0; round < 2; ++round) {
    for (int call = 0; call < 2000; ++call) {
      pool.parallel_for(64, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) hits[i]++;
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int i = 0; i < 64; ++i) ASSERT_EQ(hits[i], 4000) << "index " << i;
}

}  // namespace
}  // namespace lowbit
