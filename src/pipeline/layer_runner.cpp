#include "pipeline/layer_runner.h"

#include <algorithm>

namespace lowbit {

Expected<std::vector<float>> embed_tokens(const std::vector<float>& token_embedding, const ModelConfig& config,
                                          const int32_t* tokens, int64_t n_tokens) {
  const int64_t dim = config.dim;
  if (token_embedding.size() != static_cast<size_t>(config.vocab_size) * config.dim) {
    return make_error("embed_tokens: embedding table has {} values, expected [{}, {}]", token_embedding.size(),
                      config.vocab_size, config.dim);
  }
  std::vector<float> x(static_cast<size_t>(n_tokens * dim));  // [n_tokens, dim]
  for (int64_t t = 0; t < n_tokens; ++t) {
    if (tokens[t] < 0 || tokens[t] >= config.vocab_size) {
      return make_error("embed_tokens: token id {} at index {} is outside the vocabulary [0, {})", tokens[t], t,
                        config.vocab_size);
    }
    std::copy_n(token_embedding.data() + tokens[t] * dim, dim, x.data() + t * dim);
  }
  return x;
}

LayerRunner::LayerRunner(const ModelConfig& config, int seq_len)
    : dim_(config.dim), seq_len_(seq_len), cache_(1, seq_len, config.kv_dim()) {}

Status LayerRunner::run(const DecoderBlock& block, const float* x, int n_seq, float* y, ThreadPool& pool,
                        ActivationObserver* observer) {
  const int64_t per_seq = static_cast<int64_t>(seq_len_) * dim_;
  for (int s = 0; s < n_seq; ++s) {
    float* out = y + s * per_seq;  // [seq_len, dim]
    if (out != x + s * per_seq) std::copy_n(x + s * per_seq, per_seq, out);
    LB_RETURN_IF_ERROR(block.forward(out, seq_len_, 0, cache_, 0, scratch_, pool, observer));
  }
  return Status::ok_status();
}

}  // namespace lowbit
