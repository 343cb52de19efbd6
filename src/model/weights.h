// FP32 weights of a Llama-family model as loaded from a file, before the runtime
// wraps the matrices into Linear layers. Matrices are row-major [out, in], the
// convention of GGUF (ne0 = in) and of PyTorch nn.Linear.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/config.h"

namespace lowbit {

struct Matrix {
  int64_t rows = 0;           // output features
  int64_t cols = 0;           // input features
  std::vector<float> data;    // [rows, cols]
  std::vector<float> bias;    // [rows] or empty

  bool empty() const { return data.empty(); }
};

struct LayerWeights {
  std::vector<float> attn_norm;  // [dim]
  // Optional per-channel shifts added after each RMSNorm, n = rms_norm(x) · w + b:
  // [dim] or empty (none). Outlier Suppression+ puts -z/s here (pipeline/outlier_migration.h).
  std::vector<float> attn_norm_bias;
  std::vector<float> ffn_norm_bias;
  Matrix q_proj;                 // [n_heads*head_dim, dim], bias for qwen2
  Matrix k_proj;                 // [n_kv_heads*head_dim, dim]
  Matrix v_proj;                 // [n_kv_heads*head_dim, dim]
  Matrix o_proj;                 // [dim, n_heads*head_dim]
  std::vector<float> ffn_norm;   // [dim]
  Matrix gate_proj;              // [ffn_dim, dim]
  Matrix up_proj;                // [ffn_dim, dim]
  Matrix down_proj;              // [dim, ffn_dim]
};

// The matrix of a layer's linear by its suffix, one of "q_proj", "k_proj",
// "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj" (any other name gives
// down_proj: callers pass DecoderBlock::kLinearSuffixes).
Matrix& linear_matrix(LayerWeights& w, std::string_view suffix);
const Matrix& linear_matrix(const LayerWeights& w, std::string_view suffix);

struct ModelWeights {
  std::vector<float> token_embedding;  // [vocab, dim]
  std::vector<LayerWeights> layers;
  std::vector<float> output_norm;      // [dim]
  Matrix lm_head;                      // [vocab, dim]; empty when tied to the embedding
  // Per-frequency RoPE divisors [head_dim/2] (GGUF rope_freqs.weight, Llama-3
  // scaling precomputed by the converter); empty when absent.
  std::vector<float> rope_freq_factors;

  // Checks every shape against the config and every value for NaN/Inf; errors
  // name the tensor.
  Status validate(const ModelConfig& config, const std::string& source) const;
};

// What a file held, for `lowbit info`: one row per stored tensor.
struct StoredTensor {
  std::string name;
  std::string dtype;            // "f32", "q4_1", "bf16", ...
  std::vector<int64_t> shape;   // as stored, outermost first
  uint64_t n_bytes = 0;
};

struct FileSummary {
  std::string format;           // "gguf", "huggingface", "llama2c"
  std::string path;
  uint64_t file_bytes = 0;      // tensor data bytes (+ headers)
  std::vector<StoredTensor> tensors;
};

// Every value of a weight tensor finite; the error names the file and tensor and
// counts the bad values: "m.gguf: tensor 'layers.3.q_proj': 5 NaN/Inf values in
// the weights (the first, nan, at index 64)". Quantizing a tensor with NaN would
// otherwise write NaN scales silently.
Status check_finite_weights(const std::vector<float>& values, const std::string& tensor, const std::string& source);

}  // namespace lowbit
