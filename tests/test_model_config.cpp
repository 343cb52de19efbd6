// ModelConfig::validate: the upper bounds that keep every derived size (q_dim,
// weight matrices, KV cache) inside int / int64, at and just past each limit.
#include <gtest/gtest.h>

#include <limits>

#include "model/config.h"

namespace lowbit {
namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.n_layers = 1;
  c.dim = 8;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  c.ffn_dim = 16;
  c.vocab_size = 8;
  return c;
}

std::string error_of(const ModelConfig& c) {
  const Status s = c.validate("m.gguf");
  return s.ok() ? std::string("(accepted)") : s.message();
}

TEST(ModelConfig, AcceptsEachLimitAndRejectsOnePast) {
  ModelConfig c = tiny();
  c.n_layers = ModelConfig::kMaxLayers;
  EXPECT_TRUE(c.validate("m").ok());
  c.n_layers = ModelConfig::kMaxLayers + 1;
  EXPECT_EQ(error_of(c), "m.gguf: n_layers is 65537, above lowbit's limit of 65536");
  c.n_layers = std::numeric_limits<int>::max();
  EXPECT_EQ(error_of(c), "m.gguf: n_layers is 2147483647, above lowbit's limit of 65536");

  c = tiny();
  c.vocab_size = ModelConfig::kMaxVocab + 1;
  EXPECT_EQ(error_of(c), "m.gguf: vocab_size is 16777217, above lowbit's limit of 16777216");
  c = tiny();
  c.max_seq_len = std::numeric_limits<int>::max();
  EXPECT_EQ(error_of(c), "m.gguf: max_seq_len is 2147483647, above lowbit's limit of 16777216");
  c = tiny();
  c.ffn_dim = -3;
  EXPECT_EQ(error_of(c), "m.gguf: ffn_dim must be positive, got -3");
}

TEST(ModelConfig, HeadProductsAreBoundedWithoutOverflow) {
  // 65536 x 65536 = 2^32 overflowed the int q_dim() (fuzzer find, issue 18).
  ModelConfig c = tiny();
  c.n_heads = c.n_kv_heads = c.head_dim = 65536;
  EXPECT_EQ(error_of(c), "m.gguf: q_dim (n_heads x head_dim) is 4294967296, above lowbit's limit of 1048576");
  c = tiny();
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 1 << 18;  // q_dim 2^20 is the limit, kv_dim 2^19
  EXPECT_TRUE(c.validate("m").ok());
  EXPECT_EQ(c.q_dim(), 1 << 20);
  EXPECT_EQ(c.kv_dim(), 1 << 19);
  c.n_heads = 8;
  c.n_kv_heads = 8;
  EXPECT_EQ(error_of(c), "m.gguf: q_dim (n_heads x head_dim) is 2097152, above lowbit's limit of 1048576");
}

}  // namespace
}  // namespace lowbit
