#include "model/llama_model.h"

#include <algorithm>
#include <cstdio>

#include "model/ops.h"

namespace lowbit {

Expected<LlamaModel> LlamaModel::create(ModelConfig config, ModelWeights weights) {
  LB_RETURN_IF_ERROR(config.validate("model"));
  LB_RETURN_IF_ERROR(weights.validate(config, "model"));
  LlamaModel model;
  model.config_ = config;
  model.output_norm_ = std::move(weights.output_norm);
  if (config.tied_embeddings) {
    Matrix head;
    head.rows = config.vocab_size;
    head.cols = config.dim;
    head.data = weights.token_embedding;  // a copy: the head may later be replaced by a quantized one
    model.lm_head_ = std::make_unique<DenseLinear>(std::move(head));
  } else {
    model.lm_head_ = std::make_unique<DenseLinear>(std::move(weights.lm_head));
  }
  LB_ASSIGN_OR_RETURN(model.token_embedding_, TokenEmbedding::fp32(std::move(weights.token_embedding), config.dim));
  model.layers_.reserve(weights.layers.size());
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    LB_ASSIGN_OR_RETURN(
        DecoderBlock block,
        DecoderBlock::create(config, static_cast<int>(i), std::move(weights.layers[i]), weights.rope_freq_factors));
    model.layers_.push_back(std::move(block));
  }
  return model;
}

Expected<LlamaModel> LlamaModel::assemble(ModelConfig config, TokenEmbedding embedding, std::vector<float> output_norm,
                                          std::vector<DecoderBlock> blocks, std::unique_ptr<Linear> lm_head,
                                          bool head_shares_embedding) {
  LB_RETURN_IF_ERROR(config.validate("model"));
  if (embedding.vocab() != config.vocab_size || embedding.dim() != config.dim) {
    return make_error("model: token embedding [{}, {}], expected [{}, {}]", embedding.vocab(), embedding.dim(),
                      config.vocab_size, config.dim);
  }
  if (output_norm.size() != static_cast<size_t>(config.dim)) {
    return make_error("model: output_norm has {} values, expected {}", output_norm.size(), config.dim);
  }
  if (blocks.size() != static_cast<size_t>(config.n_layers)) {
    return make_error("model: {} decoder blocks, config says {}", blocks.size(), config.n_layers);
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (blocks[i].index() != static_cast<int>(i)) return make_error("model: block {} has index {}", i, blocks[i].index());
  }
  if (lm_head == nullptr || lm_head->out_features() != config.vocab_size || lm_head->in_features() != config.dim) {
    return make_error("model: lm_head missing or not [{}, {}]", config.vocab_size, config.dim);
  }
  LlamaModel model;
  model.config_ = std::move(config);
  model.token_embedding_ = std::move(embedding);
  model.output_norm_ = std::move(output_norm);
  model.layers_ = std::move(blocks);
  model.lm_head_ = std::move(lm_head);
  model.head_shares_embedding_ = head_shares_embedding;
  return model;
}

std::vector<std::string> LlamaModel::linear_names() const {
  std::vector<std::string> names;
  for (const DecoderBlock& block : layers_) {
    for (size_t k = 0; k < DecoderBlock::kLinearSuffixes.size(); ++k) names.push_back(block.linear_name(k));
  }
  names.push_back("lm_head");
  return names;
}

std::pair<DecoderBlock*, std::string> LlamaModel::find_block(const std::string& name) {
  unsigned index = 0;
  char suffix[32] = {};
  if (std::sscanf(name.c_str(), "layers.%u.%31s", &index, suffix) != 2 || index >= layers_.size() ||
      name != fmt::format("layers.{}.{}", index, suffix)) {
    return {nullptr, ""};
  }
  return {&layers_[index], suffix};
}

Linear* LlamaModel::find_linear(const std::string& name) {
  if (name == "lm_head") return lm_head_.get();
  auto [block, suffix] = find_block(name);
  return block == nullptr ? nullptr : block->find_linear(suffix);
}

Status LlamaModel::replace_linear(const std::string& name, std::unique_ptr<Linear> replacement) {
  if (name == "lm_head") {
    LB_RETURN_IF_ERROR(check_replacement_shape(name, *lm_head_, *replacement));
    lm_head_ = std::move(replacement);
    head_shares_embedding_ = false;
    return Status::ok_status();
  }
  auto [block, suffix] = find_block(name);
  if (block == nullptr || block->find_linear(suffix) == nullptr) return make_error("no linear layer named '{}'", name);
  return block->replace_linear(suffix, std::move(replacement));
}

void LlamaModel::set_prompt_attention(const PromptAttention& attention) {
  for (DecoderBlock& block : layers_) block.set_prompt_attention(attention);
}

void LlamaModel::set_fixed_order(bool on, Isa isa) {
  for (DecoderBlock& block : layers_) block.set_fixed_order(on, isa);
}

Status LlamaModel::replace_token_embedding(TokenEmbedding embedding) {
  if (embedding.vocab() != token_embedding_.vocab() || embedding.dim() != token_embedding_.dim()) {
    return make_error("model: token embedding [{}, {}] replaced by one of [{}, {}]", token_embedding_.vocab(),
                      token_embedding_.dim(), embedding.vocab(), embedding.dim());
  }
  token_embedding_ = std::move(embedding);
  head_shares_embedding_ = false;
  return Status::ok_status();
}

Status LlamaModel::wrap_linear(const std::string& name, const LinearWrapper& wrap) {
  if (name == "lm_head") {
    const int64_t in = lm_head_->in_features(), out = lm_head_->out_features();
    lm_head_ = wrap(std::move(lm_head_));
    if (lm_head_ == nullptr || lm_head_->in_features() != in || lm_head_->out_features() != out) {
      return make_error("linear 'lm_head': the wrapper changed the layer's shape [{}, {}]", out, in);
    }
    return Status::ok_status();
  }
  auto [block, suffix] = find_block(name);
  if (block == nullptr || block->find_linear(suffix) == nullptr) return make_error("no linear layer named '{}'", name);
  return block->wrap_linear(suffix, wrap);
}

uint64_t LlamaModel::weight_bytes() const {
  uint64_t bytes = token_embedding_.bytes() + output_norm_.size() * sizeof(float);
  for (const DecoderBlock& block : layers_) bytes += block.weight_bytes();
  if (!head_shares_embedding_) bytes += lm_head_->weight_bytes();
  return bytes;
}

uint64_t LlamaModel::n_parameters() const {
  const ModelConfig& c = config_;
  const uint64_t per_layer = 2ull * c.dim + 2ull * c.q_dim() * c.dim + 2ull * c.kv_dim() * c.dim +
                             3ull * c.ffn_dim * c.dim + (c.qkv_bias ? c.q_dim() + 2ull * c.kv_dim() : 0);
  uint64_t n = static_cast<uint64_t>(c.vocab_size) * c.dim + c.dim + per_layer * c.n_layers;
  if (!c.tied_embeddings) n += static_cast<uint64_t>(c.vocab_size) * c.dim;
  return n;
}

std::unique_ptr<KvCache> LlamaModel::make_fp32_cache(int capacity) const {
  return std::make_unique<Fp32KvCache>(config_.n_layers, capacity, config_.kv_dim());
}

KvCacheShape LlamaModel::kv_cache_shape(int capacity) const {
  return KvCacheShape{config_.n_layers, capacity, config_.n_kv_heads, config_.head_dim};
}

Expected<std::unique_ptr<KvCache>> LlamaModel::make_cache(int capacity, const KvCacheFactory& factory) const {
  if (!factory) return make_fp32_cache(capacity);
  return factory(kv_cache_shape(capacity));
}

Status LlamaModel::forward(const int32_t* tokens, int n_tokens, int pos, KvCache& cache, float* logits,
                           ThreadPool& pool, const ForwardOptions& options) const {
  const ModelConfig& c = config_;
  if (n_tokens <= 0) return make_error("forward: no tokens");
  if (pos < 0 || pos + n_tokens > cache.capacity()) {
    return make_error("forward: positions [{}, {}) exceed the KV cache capacity {}", pos, pos + n_tokens,
                      cache.capacity());
  }
  for (int t = 0; t < n_tokens; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      return make_error("forward: token id {} at index {} is outside the vocabulary [0, {})", tokens[t], t,
                        c.vocab_size);
    }
  }
  const int64_t n = n_tokens;
  const int dim = c.dim;
  std::vector<float> x(n * dim);  // [n, dim] residual stream
  for (int64_t t = 0; t < n; ++t) {
    token_embedding_.lookup(tokens[t], x.data() + t * dim);
  }
  BlockScratch scratch;
  for (const DecoderBlock& block : layers_) {
    LB_RETURN_IF_ERROR(block.forward(x.data(), n_tokens, pos, cache, block.index(), scratch, pool, options.observer));
  }

  std::vector<float>& xb = scratch.xb;  // [n, dim] normed final hidden states
  xb.resize(static_cast<size_t>(n * dim));
  if (options.all_logits) {
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t)
        rms_norm(x.data() + t * dim, output_norm_.data(), dim, c.norm_eps, xb.data() + t * dim);
    });
    if (options.observer != nullptr) options.observer->observe("lm_head", xb.data(), n, dim);
    lm_head_->forward(xb.data(), n, logits, pool);
  } else {
    rms_norm(x.data() + (n - 1) * dim, output_norm_.data(), dim, c.norm_eps, xb.data());
    if (options.observer != nullptr) options.observer->observe("lm_head", xb.data(), 1, dim);
    lm_head_->forward(xb.data(), 1, logits, pool);
  }
  return Status::ok_status();
}

}  // namespace lowbit
