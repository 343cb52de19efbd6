// The Llama-family decoder in FP32: RMSNorm, RoPE (adjacent or half-split pairs,
// rope_theta, Llama-3 scaling), grouped-query attention, SwiGLU MLP, optional
// q/k/v biases (qwen2), tied or separate output head.
//
// Linear layers have stable names, "layers.{i}.q_proj|k_proj|v_proj|o_proj|
// gate_proj|up_proj|down_proj" and "lm_head", used by the replacement seam and by
// the activation observer. Each decoder layer is a DecoderBlock (decoder_block.h),
// which the layer-by-layer quantization pipeline also runs on its own.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "model/decoder_block.h"
#include "model/kv_cache.h"
#include "model/linear.h"
#include "model/token_embedding.h"
#include "model/weights.h"

namespace lowbit {

struct ForwardOptions {
  ActivationObserver* observer = nullptr;  // sees every linear input when set
  bool all_logits = true;                  // false: only the last position's logits
};

class LlamaModel {
 public:
  // Takes the weights; matrices become DenseLinear layers.
  static Expected<LlamaModel> create(ModelConfig config, ModelWeights weights);
  // From parts built elsewhere (model/runtime_model.h builds packed ones straight
  // from a lowbit file): output_norm [dim], blocks in layer order, the head
  // [vocab, dim]. head_shares_embedding: the head runs on the embedding's storage
  // (a tied head over the packed table), so weight_bytes() counts it once.
  static Expected<LlamaModel> assemble(ModelConfig config, TokenEmbedding embedding, std::vector<float> output_norm,
                                       std::vector<DecoderBlock> blocks, std::unique_ptr<Linear> lm_head,
                                       bool head_shares_embedding);

  const ModelConfig& config() const { return config_; }

  std::vector<std::string> linear_names() const;
  Linear* find_linear(const std::string& name);
  // Replaces a linear layer; shapes must match.
  Status replace_linear(const std::string& name, std::unique_ptr<Linear> replacement);
  // Replaces a linear layer by wrap(current layer) (DecoderBlock::wrap_linear).
  Status wrap_linear(const std::string& name, const LinearWrapper& wrap);
  // Every block's prompt attention (DecoderBlock::set_prompt_attention; empty: FP32).
  void set_prompt_attention(const PromptAttention& attention);
  // Every block's deterministic attention and SwiGLU (DecoderBlock::set_fixed_order).
  void set_fixed_order(bool on, Isa isa);
  // Replaces the token embedding (same [vocab, dim]); the head stops sharing its storage.
  Status replace_token_embedding(TokenEmbedding embedding);
  // Bytes held by the weights: linears + embedding + norms, and the head unless it
  // shares the embedding's storage (a tied FP32 head is a copy and is counted).
  uint64_t weight_bytes() const;
  const TokenEmbedding& token_embedding() const { return token_embedding_; }
  uint64_t n_parameters() const;

  std::unique_ptr<KvCache> make_fp32_cache(int capacity) const;
  // The shape a KV cache for `capacity` positions of this model has.
  KvCacheShape kv_cache_shape(int capacity) const;
  // A cache from `factory` (src/kvcache builds quantized ones); FP32 when the factory is empty.
  Expected<std::unique_ptr<KvCache>> make_cache(int capacity, const KvCacheFactory& factory) const;

  // Processes tokens[0..n_tokens) at positions [pos, pos + n_tokens), appending their
  // keys/values to `cache` (which must hold positions [0, pos) already).
  // logits: [n_tokens, vocab] when options.all_logits, else [vocab] for the last token.
  Status forward(const int32_t* tokens, int n_tokens, int pos, KvCache& cache, float* logits,
                 ThreadPool& pool, const ForwardOptions& options = {}) const;

 private:
  // The block and the linear suffix a name such as "layers.3.k_proj" refers to; null block otherwise.
  std::pair<DecoderBlock*, std::string> find_block(const std::string& name);

  ModelConfig config_;
  TokenEmbedding token_embedding_;      // [vocab, dim]
  std::vector<float> output_norm_;      // [dim]
  std::vector<DecoderBlock> layers_;
  std::unique_ptr<Linear> lm_head_;
  bool head_shares_embedding_ = false;  // until lm_head is replaced
};

}  // namespace lowbit
