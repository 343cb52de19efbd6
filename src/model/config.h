// Hyper-parameters of a Llama-family decoder (llama, mistral, qwen2), independent
// of the file format it was loaded from.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace lowbit {

// Which dimensions of a head RoPE rotates together.
enum class RopeLayout {
  kAdjacentPairs,  // (x[2i], x[2i+1]): llama2.c, and GGUF files converted from llama/mistral
  kHalfSplit,      // (x[i], x[i + head_dim/2]): Hugging Face checkpoints, GGUF qwen2 (NEOX)
};

const char* rope_layout_name(RopeLayout layout);

// Llama-3 style frequency scaling ("rope_type": "llama3"); factor 1 means none.
struct RopeScaling {
  bool llama3 = false;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position = 8192;
};

struct ModelConfig {
  std::string architecture = "llama";  // "llama", "mistral" or "qwen2"
  int n_layers = 0;
  int dim = 0;           // residual stream width
  int n_heads = 0;
  int n_kv_heads = 0;    // < n_heads for grouped-query attention
  int head_dim = 0;      // usually dim / n_heads
  int ffn_dim = 0;       // SwiGLU hidden width
  int vocab_size = 0;
  int max_seq_len = 2048;
  float norm_eps = 1e-5f;
  double rope_theta = 10000.0;
  RopeLayout rope_layout = RopeLayout::kAdjacentPairs;
  RopeScaling rope_scaling;
  bool tied_embeddings = false;  // output head shares the token embedding
  bool qkv_bias = false;         // qwen2

  // Upper bounds validate() enforces, far above any released model, so that every
  // size derived from a config fits: q_dim and kv_dim fit an int, a weight matrix
  // (kMaxWidth^2 or kMaxVocab x kMaxWidth) and a KV cache
  // (kMaxLayers x kMaxSeqLen x kMaxWidth) stay far below 2^63 elements.
  static constexpr int64_t kMaxLayers = 1 << 16;
  static constexpr int64_t kMaxWidth = 1 << 20;   // dim, ffn_dim, head_dim, q_dim, kv_dim
  static constexpr int64_t kMaxVocab = 1 << 24;
  static constexpr int64_t kMaxSeqLen = 1 << 24;

  // Products in int64: validate() keeps them within kMaxWidth, so the int result is exact.
  int q_dim() const { return static_cast<int>(int64_t{n_heads} * head_dim); }
  int kv_dim() const { return static_cast<int>(int64_t{n_kv_heads} * head_dim); }

  // Checks that the numbers are positive, within the bounds above and consistent
  // (heads divide, etc.).
  Status validate(const std::string& source) const;
};

}  // namespace lowbit
