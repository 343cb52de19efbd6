// quantize_memory_bound (pipeline/memory_bound.h) on a shape small enough to
// add up by hand, and the phase it picks for a data-free and a calibrated run.
#include <gtest/gtest.h>

#include "pipeline/memory_bound.h"

namespace lowbit {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.dim = 8;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 4;  // q_dim 8, kv_dim 4
  c.ffn_dim = 16;
  c.vocab_size = 100;
  c.n_layers = 3;
  return c;
}

TEST(MemoryBound, DataFreeIsTheLargerOfTablesAndOneLayer) {
  const MemoryBound b = quantize_memory_bound(small_config(), 0, 0, 2);
  // tables: 2 · 4 · vocab · dim = 6400.
  EXPECT_EQ(b.tables, 6400u);
  // layer params: qkv 16·8 = 128, o 64, gate/up 256, down 128: P = 576.
  // phase p: 8·P(≥p) + 4·P(<p) + 8·(widest out·in): p=0 4608 + 512 = 5120;
  // p=1 8·448 + 4·128 + 512 = 4608; p=2 8·384 + 4·192 + 1024 = 4864; p=3 8·128 + 4·448 + 1024 = 3840.
  EXPECT_EQ(b.layers, 5120u);
  EXPECT_EQ(b.overhead, 300u << 20);
  EXPECT_EQ(b.total(), 6400u + (300u << 20));
}

TEST(MemoryBound, CalibratedAddsStatesHessiansAndGptqWork) {
  const int n = 2, len = 4, threads = 1;
  const MemoryBound b = quantize_memory_bound(small_config(), n, len, threads);
  const uint64_t states = 4 * 2 * 4 * 8;  // 256
  EXPECT_EQ(b.tables, 6400u + states);
  // block buffers: 4·L·(2·8 + 2·8 + 2·4 + 2·16) + threads·4·L² = 16·72 + 64 = 1216.
  const uint64_t block = 1216;
  // H: 8·in² for inputs 8, 8, 8, 16: 512 · 3 + 2048 = 3584.
  // statistics moment: 8·576 + 3584 = 8192.
  // GPTQ work W = 8·in² + 24·widest + 16·128·in: qkv 512 + 1536 + 16384 = 18432,
  // o the same, gate/up 512 + 3072 + 16384 = 19968, down 2048 + 3072 + 32768 = 37888.
  // phase 3: 8·128 + 4·448 + 2048 + 37888 = 42752, the largest moment.
  EXPECT_EQ(b.layers, states + block + 42752u);
  EXPECT_EQ(b.total(), b.layers + (300u << 20));
}

TEST(MemoryBound, Bf16ProductsAddTheWindowScratchToTheStatisticsPass) {
  // A window long enough for the statistics pass to be the largest moment under BF16:
  // its scratch at the widest input (16) is 4·16² + 2·L·16 = 1024 + 3,200,000.
  const int n = 1, len = 100000, threads = 1;
  const MemoryBound fp32 = quantize_memory_bound(small_config(), n, len, threads);
  const MemoryBound bf16 = quantize_memory_bound(small_config(), n, len, threads, true);
  EXPECT_EQ(bf16.tables, fp32.tables);
  // FP32: the largest moment is phase 3's 42752 (above); BF16: 8192 + 1024 + 3,200,000.
  EXPECT_EQ(bf16.layers - fp32.layers, 8192u + 1024u + 3200000u - 42752u);
  // Data-free runs have no statistics pass: nothing added.
  EXPECT_EQ(quantize_memory_bound(small_config(), 0, 0, 2, true).total(),
            quantize_memory_bound(small_config(), 0, 0, 2).total());
}

}  // namespace
}  // namespace lowbit
