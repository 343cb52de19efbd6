// Runs decoder blocks one at a time over a batch of calibration sequences, for
// GPTQ's sequential scheme: the inputs of layer i are the outputs of layers
// 0..i-1 (already quantized), so only one layer's weights need to be in FP32 and
// the hidden states of the batch, [n_seq, seq_len, dim], are all that is carried
// from one layer to the next.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "model/decoder_block.h"
#include "model/kv_cache.h"
#include "model/linear.h"

namespace lowbit {

// Hidden states entering layer 0: rows of the embedding table [vocab, dim].
// tokens: [n_tokens]; returns [n_tokens, dim]. Errors name an id outside the vocabulary.
Expected<std::vector<float>> embed_tokens(const std::vector<float>& token_embedding, const ModelConfig& config,
                                          const int32_t* tokens, int64_t n_tokens);

class LayerRunner {
 public:
  // Sequences of seq_len tokens, each attending only to itself from position 0.
  LayerRunner(const ModelConfig& config, int seq_len);

  int seq_len() const { return seq_len_; }

  // y = block(x) for every sequence; x, y: [n_seq, seq_len, dim], either the same
  // buffer (in place) or disjoint. The observer, when set, sees every linear input of every sequence
  // (n_tokens = seq_len per call).
  Status run(const DecoderBlock& block, const float* x, int n_seq, float* y, ThreadPool& pool,
             ActivationObserver* observer = nullptr);

 private:
  int dim_;
  int seq_len_;
  Fp32KvCache cache_;  // one layer, seq_len positions, reused by every sequence
  BlockScratch scratch_;
};

}  // namespace lowbit
