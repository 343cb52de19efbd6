// One Llama-family decoder layer, usable on its own (the layer-by-layer
// quantization pipeline) and as a building block of LlamaModel:
//   h   = x + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))),  n1 = rms_norm(x, attn_norm)
//   out = h + down_proj(silu(gate_proj(n2)) * up_proj(n2)),                      n2 = rms_norm(h, ffn_norm)
// (+ attn_norm_bias / ffn_norm_bias after the norms when the weights have them)
// with grouped-query causal attention over the positions held in a KV cache.
// Linear layers are named "layers.{i}.q_proj" ... "layers.{i}.down_proj" for the
// replacement seam and the activation observer.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kernels/cpu_features.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/linear.h"
#include "model/weights.h"

namespace lowbit {

class AttnProbQuantizer;  // quant/attn_prob_quant.h

// Work buffers of a block's forward pass, reused across blocks and calls.
struct BlockScratch {
  std::vector<float> xb;      // [n, dim] normed input
  std::vector<float> q;       // [n, n_heads*hd]
  std::vector<float> k;       // [n, kv_dim]
  std::vector<float> v;       // [n, kv_dim]
  std::vector<float> attn;    // [n, n_heads*hd]
  std::vector<float> proj;    // [n, dim]
  std::vector<float> gate;    // [n, ffn]
  std::vector<float> up;      // [n, ffn]
  std::vector<float> scores;  // [threads][n, n_pos] one head at a time per pool thread; one token: [threads][group, n_pos]
  std::vector<float> k_read;  // [n_pos, kv_dim] when the cache is not FP32 or holds keys before RoPE
  std::vector<float> v_read;  // [n_pos, kv_dim]
  // Caches that keep recent positions exact (KvCacheLayout::recent_fp), batched writes only:
  std::vector<float> k_exact;       // [n_pos - from, kv_dim] exact rows of positions [from, n_pos)
  std::vector<float> v_exact;       // [n_pos - from, kv_dim]
  std::vector<float> attn_exact;    // [threads][n, head_dim] the exact values' share, one head at a time per thread
  std::vector<int> key_from;        // [n] first exactly read key position of each query
  std::vector<int> value_from;      // [n]

  void resize(const ModelConfig& config, int64_t n_tokens, int64_t n_pos);
};

// Causal prompt attention with its own arithmetic: q [n_tokens, q_dim] after RoPE at
// positions [pos, pos + n_tokens); keys, values [pos + n_tokens, kv_dim] (keys after
// RoPE); out [n_tokens, q_dim].
using PromptAttention = std::function<void(const ModelConfig& config, const float* q, int n_tokens, int pos,
                                           const float* keys, const float* values, float* out, ThreadPool& pool)>;

// attention_bf16 (model/attention_bf16.h) at `isa`.
PromptAttention bf16_prompt_attention(Isa isa);

// Builds a layer around the one it takes (wrap_linear); never fails.
using LinearWrapper = std::function<std::unique_ptr<Linear>(std::unique_ptr<Linear>)>;

// The replacement seam's rule: a replacement has the shape of the layer it replaces.
Status check_replacement_shape(const std::string& name, const Linear& current, const Linear& replacement);

class DecoderBlock {
 public:
  // The seven linear layers in forward order, as named after "layers.{i}.".
  static constexpr std::array<std::string_view, 7> kLinearSuffixes = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                                      "gate_proj", "up_proj", "down_proj"};

  // Takes the weights of layer `index` (checked: shapes and finite values); the
  // matrices become DenseLinear layers. rope_freq_factors: [head_dim/2] or empty.
  static Expected<DecoderBlock> create(const ModelConfig& config, int index, LayerWeights weights,
                                       const std::vector<float>& rope_freq_factors);
  // The same around linear layers built elsewhere (packed ones, model/runtime_model.h),
  // in kLinearSuffixes order, each checked against the config's shape. The norms
  // (and norm biases) come from `norms`, whose matrices must be empty.
  static Expected<DecoderBlock> create(const ModelConfig& config, int index, LayerWeights norms,
                                       std::array<std::unique_ptr<Linear>, 7> linears,
                                       const std::vector<float>& rope_freq_factors);

  int index() const { return index_; }
  // "layers.{i}.{suffix}" of linear k (k indexes kLinearSuffixes).
  const std::string& linear_name(size_t k) const { return names_[k]; }

  // Null when the suffix names no linear layer of a block.
  Linear* find_linear(std::string_view suffix);
  const Linear* find_linear(std::string_view suffix) const;
  // Replaces a linear layer; shapes must match.
  Status replace_linear(std::string_view suffix, std::unique_ptr<Linear> replacement);
  // Replaces a linear layer by wrap(current layer), e.g. an activation quantizer
  // or an online rotation around it; the result must have the same shape (a
  // mismatch is an error that leaves the block unusable).
  Status wrap_linear(std::string_view suffix, const LinearWrapper& wrap);
  uint64_t weight_bytes() const;  // linears + norms
  // Prompt attention (n_tokens > 1) computed with products other than FP32's: BF16
  // (model/attention_bf16.h, for the calibration forward's --calib-arith bf16), L-Mul
  // or FP8 (model/attention_approx.h, for ppl --arith). Caches that code, rotate or
  // keep recent positions apart keep the FP32 path; so do single-token steps. Off
  // (empty) by default.
  void set_prompt_attention(PromptAttention attention) { prompt_attention_ = std::move(attention); }
  // The deterministic forward (model/deterministic.h): attention of every call, prompt
  // or single token, by attention_fixed_order at `isa` (an FP32 cache without
  // rotation, exact band or keys before RoPE is then required) and SwiGLU by
  // fixed_order_swiglu. The norms, RoPE and residual adds are per-row and fixed in
  // order already; the linears are made FixedOrderLinear by the caller.
  void set_fixed_order(bool on, Isa isa) {
    fixed_order_ = on;
    fixed_order_isa_ = isa;
  }
  bool fixed_order() const { return fixed_order_; }
  // Fake quantization of the attention probabilities P (quant/attn_prob_quant.h),
  // prompts and single-token steps alike, in the FP32 attention path: while set,
  // the prompt attention above and a cache's in-place decode (attend_decode) are
  // not used. Null (the default): P as computed.
  void set_attn_prob_quant(std::shared_ptr<const AttnProbQuantizer> quantizer) {
    prob_quant_ = std::move(quantizer);
  }

  // x: [n_tokens, dim], the residual stream at positions [pos, pos + n_tokens),
  // updated in place. Keys/values are appended to layer `cache_layer` of `cache`,
  // which must hold positions [0, pos) of this block already; as cache.layout()
  // asks, keys go in before RoPE (RoPE is applied to what is read back) and the
  // queries/outputs are rotated to match rotated storage. The observer, when
  // set, sees the input of every linear layer.
  Status forward(float* x, int n_tokens, int pos, KvCache& cache, int cache_layer, BlockScratch& scratch,
                 ThreadPool& pool, ActivationObserver* observer) const;

 private:
  Status attention(int n_tokens, int pos, KvCache& cache, int cache_layer, const KvCacheLayout& layout,
                   BlockScratch& s, ThreadPool& pool) const;
  // One token's attention over [0, n_pos) from FP32 keys/values [n_pos, kv_dim], into s.attn.
  void decode_attention(int n_pos, const float* keys, const float* values, BlockScratch& s, ThreadPool& pool) const;

  ModelConfig config_;
  int index_ = 0;
  std::vector<double> rope_inv_freq_;               // [head_dim / 2]
  std::vector<float> attn_norm_;                    // [dim]
  std::vector<float> ffn_norm_;                     // [dim]
  std::vector<float> attn_norm_bias_;               // [dim] or empty
  std::vector<float> ffn_norm_bias_;                // [dim] or empty
  // Rebuilds shared_inputs_ and bf16_shared_inputs_ from linears_; run whenever a linear is set.
  void group_shared_inputs();

  std::array<std::unique_ptr<Linear>, 7> linears_;  // in kLinearSuffixes order
  // The layers of q/k/v (0) and gate/up (1) when all of the group are packed
  // layers that read a decode input alike (PackedLinear::shares_decode_input),
  // else empty. Decided when the layers are set (create, replace_linear,
  // wrap_linear), so that forward runs one shared decode pass without asking the
  // layers' kind. Points into linears_.
  std::array<std::vector<const PackedLinear*>, 2> shared_inputs_;
  // The same groups when all are BF16-product layers reading one input
  // (Bf16Linear::shares_input): a prompt rounds that input once for the group.
  std::array<std::vector<const Bf16Linear*>, 2> bf16_shared_inputs_;
  std::array<std::string, 7> names_;                // "layers.{i}.q_proj", ...
  PromptAttention prompt_attention_;  // empty: FP32 attention
  bool fixed_order_ = false;          // set_fixed_order
  Isa fixed_order_isa_ = Isa::kGeneric;
  std::shared_ptr<const AttnProbQuantizer> prob_quant_;  // null: P unquantized
};

}  // namespace lowbit
