// Test support: writes a LoadedModel back out as a Hugging Face folder or a
// llama2.c .bin, so the loaders can be checked against a model loaded another way
// (GGUF) by comparing weights and logits. Also small random models, a synthetic
// SentencePiece vocabulary, temporary folders and a logits helper.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/safetensors.h"
#include "model/loader.h"

namespace lowbit::testing {

// A SentencePiece vocabulary as GGUF stores it (tokenizer.ggml.tokens/scores/
// token_type): pieces use "▁" for spaces, byte pieces are "<0xNN>".
struct SpmVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;  // GGUF token types: 1 normal, 2 unknown, 3 control, 6 byte
  int32_t unk_id = 0;
  int32_t bos_id = 1;
  int32_t eos_id = 2;
};

Expected<SpmVocab> read_gguf_spm_vocab(const std::string& gguf_path);

// <unk>, <s>, </s>, the 256 byte pieces, then a few letters and merged pieces of
// "▁the", "▁a", "an", ... with decreasing scores.
SpmVocab make_test_spm_vocab();

// BPE merges derived like transformers' SentencePieceExtractor: for every piece,
// every split into two pieces that are both in the vocab (at UTF-8 character
// boundaries), ordered by (left id, right id); then all merges stable-sorted by
// the merged piece's score, highest first. Each merge is "left right".
std::vector<std::string> spm_merges(const SpmVocab& vocab);

// tokenizer.json text as transformers' LlamaConverter writes it for a legacy
// SentencePiece BPE model: BPE with byte_fallback, normalizer Prepend("▁") +
// Replace(" " -> "▁"), no pre-tokenizer, decoder Replace/ByteFallback/Fuse/Strip.
std::string spm_to_tokenizer_json(const SpmVocab& vocab);

// HF's convert_llama_weights_to_hf.py permute(): rows of a q/k projection
// [n_heads * head_dim, cols] from adjacent RoPE pairs (2i, 2i+1) to the half-split
// layout (i, i + head_dim/2), per head:
//   w.view(n_heads, head_dim/2, 2, cols).transpose(1, 2).reshape(rows, cols)
// A bias is the cols == 1 case. `to_half_split = false` applies the inverse.
std::vector<float> permute_rope_rows(const std::vector<float>& w, int n_heads, int64_t cols, bool to_half_split);

struct HfWriteOptions {
  bool sharded = false;  // two shards + model.safetensors.index.json
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
};

// Writes config.json, model.safetensors (or shards + index) and, when `vocab` is
// given, tokenizer.json. q/k rows (and biases) are permuted to the half-split
// layout when the model holds adjacent pairs.
Status write_hf_checkpoint(const LoadedModel& m, const SpmVocab* vocab, const std::string& folder,
                           const HfWriteOptions& options = {});

// Writes a llama2.c version-0 .bin (q/k permuted back to adjacent pairs when the
// model holds half-split ones). Errors for what the format cannot hold: biases,
// head_dim != dim / n_heads, rope_theta != 10000, RoPE scaling.
Status write_llama2c_checkpoint(const LoadedModel& m, const std::string& path);

// A model with uniform random weights in [-0.5, 0.5) / sqrt(cols) and norms in
// [0.5, 1.5), deterministic for a seed; biases when config.qkv_bias.
LoadedModel make_random_model(const ModelConfig& config, uint32_t seed);

// Copies config and weights (LoadedModel holds a unique_ptr tokenizer).
LoadedModel clone_weights(const LoadedModel& m);

// Runs the FP32 forward pass over `tokens` from position 0 on one thread.
// Returns logits [n_tokens, vocab].
Expected<std::vector<float>> forward_logits(const LoadedModel& m, const std::vector<int32_t>& tokens);

// Largest |a[i] - b[i]| and where; sizes must match.
struct MaxDiff {
  float value = 0;
  size_t index = 0;
};
MaxDiff max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);

// A fresh folder under the system temp dir, removed with its contents on destruction.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& tag);
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace lowbit::testing
