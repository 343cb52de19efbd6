// Model shapes several tests build random models of.
#pragma once

#include "model/config.h"

namespace lowbit::testing {

// A SmolLM2-135M-shaped model, 2 layers: 576 wide (4.5 groups of 128), 9 heads /
// 3 KV heads of 64, 1536 FFN, tied embeddings, theta 1e5; vocab 512 so
// stories260K's tokenizer serves (tests needing another vocabulary set it).
inline ModelConfig smollm2_shaped_config() {
  ModelConfig c;
  c.architecture = "llama";
  c.n_layers = 2;
  c.dim = 576;
  c.n_heads = 9;
  c.n_kv_heads = 3;
  c.head_dim = 64;
  c.ffn_dim = 1536;
  c.vocab_size = 512;
  c.max_seq_len = 2048;
  c.norm_eps = 1e-5f;
  c.rope_theta = 100000.0;
  c.rope_layout = RopeLayout::kAdjacentPairs;
  c.tied_embeddings = true;
  return c;
}

}  // namespace lowbit::testing
