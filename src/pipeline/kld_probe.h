// The end-to-end cost of changing one or a few weight tensors, measured forward
// only: KL(P_base ‖ P_changed) averaged over every position of a few calibration
// windows, where P_base is the FP32 model's next-token distribution (issue 15's
// "measured" sensitivity and the finite-difference Hutchinson probes).
//
// The FP32 model is held whole (the decoder blocks, the embedding and the head:
// about twice the FP32 size of the model, 1.1 GB for SmolLM2-135M), together with
// the hidden state entering every layer on the probe windows ([n_seq·len, dim]
// per layer) and the base model's log-probabilities ([n_seq·len, vocab] floats),
// so a change to layer l re-runs layers l..L-1 and the head only.
//
// At the base point the KL divergence is zero with zero gradient, so for a small
// change δ of the weights KLD(w + δ) = ½ δᵀ F δ + O(‖δ‖³), F the Fisher
// information of the model's predictive distribution (= the Hessian of the
// expected KL): 2·KLD(w + ε v)/ε² estimates vᵀ F v, Hutchinson's quadratic form.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "model/decoder_block.h"
#include "model/weights.h"

namespace lowbit {

class KldProbe {
 public:
  // tokens: [n_seq, seq_len], each window attending from position 0. Runs the base
  // model once.
  static Expected<std::unique_ptr<KldProbe>> create(const ModelConfig& config, ModelWeights weights,
                                                    std::vector<int32_t> tokens, int n_seq, int seq_len,
                                                    ThreadPool& pool);

  // Tensor names: "token_embedding", "layers.{i}.{q_proj...down_proj}", "lm_head" (untied).
  // The tensor's FP32 weights and shape; error for an unknown name.
  Expected<const Matrix*> weight(const std::string& name) const;

  // Mean KL divergence per position with the named tensors replaced by the given
  // weights (same shapes, [rows, cols]); the model is unchanged afterwards.
  Expected<double> kld_with(const std::map<std::string, const float*>& replaced);

  int64_t positions() const { return static_cast<int64_t>(n_seq_) * seq_len_; }

 private:
  KldProbe(const ModelConfig& config, ModelWeights weights, std::vector<int32_t> tokens, int n_seq, int seq_len);
  // Layers [first, L) from inputs_[first] (or `x0` when given), then the head:
  // log-probabilities compared with the base's (or stored as the base when `store_base`).
  Expected<double> run_from(int first, std::vector<float> x, const std::map<std::string, const float*>& replaced,
                            bool store_base);
  Expected<double> head_kld(const std::vector<float>& hidden, const float* head_override, bool store_base);

  ModelConfig config_;
  ModelWeights w_;
  Matrix embedding_matrix_;  // [vocab, dim] view copy of the embedding for weight(); the head when tied
  std::vector<DecoderBlock> blocks_;  // FP32, unchanged
  std::vector<int32_t> tokens_;       // [n_seq, seq_len]
  int n_seq_ = 0;
  int seq_len_ = 0;
  std::vector<std::vector<float>> inputs_;  // [L][n_seq·seq_len, dim]: hidden state entering each layer
  std::vector<float> base_logp_;            // [n_seq·seq_len, vocab]
  ThreadPool* pool_ = nullptr;
};

}  // namespace lowbit
