#include "model/llama_model.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "model/ops.h"

namespace lowbit {
namespace {

const char* const kLayerLinearNames[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                         "gate_proj", "up_proj", "down_proj"};

}  // namespace

Expected<LlamaModel> LlamaModel::create(ModelConfig config, ModelWeights weights) {
  LB_RETURN_IF_ERROR(config.validate("model"));
  LB_RETURN_IF_ERROR(weights.validate(config, "model"));
  LlamaModel model;
  model.config_ = config;
  model.rope_inv_freq_ = rope_inverse_frequencies(config, weights.rope_freq_factors);
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
  model.token_embedding_ = std::move(weights.token_embedding);
  for (LayerWeights& lw : weights.layers) {
    Layer layer;
    layer.attn_norm = std::move(lw.attn_norm);
    layer.ffn_norm = std::move(lw.ffn_norm);
    layer.q_proj = std::make_unique<DenseLinear>(std::move(lw.q_proj));
    layer.k_proj = std::make_unique<DenseLinear>(std::move(lw.k_proj));
    layer.v_proj = std::make_unique<DenseLinear>(std::move(lw.v_proj));
    layer.o_proj = std::make_unique<DenseLinear>(std::move(lw.o_proj));
    layer.gate_proj = std::make_unique<DenseLinear>(std::move(lw.gate_proj));
    layer.up_proj = std::make_unique<DenseLinear>(std::move(lw.up_proj));
    layer.down_proj = std::make_unique<DenseLinear>(std::move(lw.down_proj));
    model.layers_.push_back(std::move(layer));
  }
  return model;
}

std::vector<std::string> LlamaModel::linear_names() const {
  std::vector<std::string> names;
  for (size_t i = 0; i < layers_.size(); ++i) {
    for (const char* n : kLayerLinearNames) names.push_back(fmt::format("layers.{}.{}", i, n));
  }
  names.push_back("lm_head");
  return names;
}

std::unique_ptr<Linear>* LlamaModel::slot(const std::string& name) {
  if (name == "lm_head") return &lm_head_;
  unsigned index = 0;
  char suffix[32] = {};
  if (std::sscanf(name.c_str(), "layers.%u.%31s", &index, suffix) != 2 || index >= layers_.size()) {
    return nullptr;
  }
  Layer& l = layers_[index];
  const std::string s = suffix;
  if (s == "q_proj") return &l.q_proj;
  if (s == "k_proj") return &l.k_proj;
  if (s == "v_proj") return &l.v_proj;
  if (s == "o_proj") return &l.o_proj;
  if (s == "gate_proj") return &l.gate_proj;
  if (s == "up_proj") return &l.up_proj;
  if (s == "down_proj") return &l.down_proj;
  return nullptr;
}

Linear* LlamaModel::find_linear(const std::string& name) {
  std::unique_ptr<Linear>* s = slot(name);
  return s == nullptr ? nullptr : s->get();
}

Status LlamaModel::replace_linear(const std::string& name, std::unique_ptr<Linear> replacement) {
  std::unique_ptr<Linear>* s = slot(name);
  if (s == nullptr) return make_error("no linear layer named '{}'", name);
  if (replacement->in_features() != (*s)->in_features() ||
      replacement->out_features() != (*s)->out_features()) {
    return make_error("linear '{}': replacement is [{}, {}], layer is [{}, {}]", name,
                      replacement->out_features(), replacement->in_features(), (*s)->out_features(),
                      (*s)->in_features());
  }
  *s = std::move(replacement);
  return Status::ok_status();
}

uint64_t LlamaModel::weight_bytes() const {
  uint64_t bytes = (token_embedding_.size() + output_norm_.size()) * sizeof(float);
  for (const Layer& l : layers_) {
    bytes += (l.attn_norm.size() + l.ffn_norm.size()) * sizeof(float);
    for (const Linear* lin : {l.q_proj.get(), l.k_proj.get(), l.v_proj.get(), l.o_proj.get(),
                              l.gate_proj.get(), l.up_proj.get(), l.down_proj.get()}) {
      bytes += lin->weight_bytes();
    }
  }
  if (!config_.tied_embeddings) bytes += lm_head_->weight_bytes();
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
  const int hd = c.head_dim;
  const int n_pos = pos + n_tokens;  // positions visible to the last token
  const int group = c.n_heads / c.n_kv_heads;
  const float attn_scale = 1.0f / std::sqrt(static_cast<float>(hd));

  std::vector<float> x(n * dim);                 // [n, dim] residual stream
  std::vector<float> xb(n * dim);                // [n, dim] normed input
  std::vector<float> q(n * c.q_dim());           // [n, n_heads*hd]
  std::vector<float> k(n * c.kv_dim());          // [n, kv_dim]
  std::vector<float> v(n * c.kv_dim());          // [n, kv_dim]
  std::vector<float> attn(n * c.q_dim());        // [n, n_heads*hd]
  std::vector<float> proj(n * dim);              // [n, dim]
  std::vector<float> gate(n * c.ffn_dim);        // [n, ffn]
  std::vector<float> up(n * c.ffn_dim);          // [n, ffn]
  std::vector<float> scores(n * n_pos);          // [n, n_pos] one head at a time
  std::vector<float> k_read, v_read;             // [n_pos, kv_dim] when the cache is not FP32

  for (int64_t t = 0; t < n; ++t) {
    std::copy_n(token_embedding_.data() + static_cast<int64_t>(tokens[t]) * dim, dim, x.data() + t * dim);
  }

  auto run_linear = [&](const Linear& lin, const std::string& name, const float* in, float* out) {
    if (options.observer != nullptr) options.observer->observe(name, in, n, lin.in_features());
    lin.forward(in, n, out, pool);
  };
  auto norm_rows = [&](const float* src, const std::vector<float>& w, float* dst) {
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) rms_norm(src + t * dim, w.data(), dim, c.norm_eps, dst + t * dim);
    });
  };

  for (int li = 0; li < c.n_layers; ++li) {
    const Layer& L = layers_[li];
    const std::string prefix = "layers." + std::to_string(li) + ".";

    // Attention block.
    norm_rows(x.data(), L.attn_norm, xb.data());
    run_linear(*L.q_proj, prefix + "q_proj", xb.data(), q.data());
    run_linear(*L.k_proj, prefix + "k_proj", xb.data(), k.data());
    run_linear(*L.v_proj, prefix + "v_proj", xb.data(), v.data());
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        apply_rope(q.data() + t * c.q_dim(), c.n_heads, hd, pos + static_cast<int>(t), c.rope_layout,
                   rope_inv_freq_);
        apply_rope(k.data() + t * c.kv_dim(), c.n_kv_heads, hd, pos + static_cast<int>(t), c.rope_layout,
                   rope_inv_freq_);
      }
    });
    cache.write(li, pos, n_tokens, k.data(), v.data());
    const float* keys = cache.fp32_keys(li);
    const float* values = cache.fp32_values(li);
    if (keys == nullptr || values == nullptr) {
      k_read.resize(static_cast<size_t>(n_pos) * c.kv_dim());
      v_read.resize(static_cast<size_t>(n_pos) * c.kv_dim());
      cache.read(li, n_pos, k_read.data(), v_read.data());
      keys = k_read.data();
      values = v_read.data();
    }
    for (int h = 0; h < c.n_heads; ++h) {
      const int kvh = h / group;
      // scores[n, n_pos] = q_h[n, hd] · k_kvh[n_pos, hd]ᵀ / sqrt(hd)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tokens, n_pos, hd, attn_scale,
                  q.data() + h * hd, c.q_dim(), keys + kvh * hd, c.kv_dim(), 0.0f, scores.data(), n_pos);
      // Causal mask: token t (position pos+t) sees positions [0, pos+t].
      pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
        for (int64_t t = b; t < e; ++t) {
          float* row = scores.data() + t * n_pos;
          const int visible = pos + static_cast<int>(t) + 1;
          softmax(row, visible);
          std::fill(row + visible, row + n_pos, 0.0f);
        }
      });
      // attn_h[n, hd] = P[n, n_pos] · v_kvh[n_pos, hd]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n_tokens, hd, n_pos, 1.0f, scores.data(), n_pos,
                  values + kvh * hd, c.kv_dim(), 0.0f, attn.data() + h * hd, c.q_dim());
    }
    run_linear(*L.o_proj, prefix + "o_proj", attn.data(), proj.data());
    for (int64_t i = 0; i < n * dim; ++i) x[i] += proj[i];

    // MLP block: down(silu(gate(x)) * up(x)).
    norm_rows(x.data(), L.ffn_norm, xb.data());
    run_linear(*L.gate_proj, prefix + "gate_proj", xb.data(), gate.data());
    run_linear(*L.up_proj, prefix + "up_proj", xb.data(), up.data());
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) swiglu(gate.data() + t * c.ffn_dim, up.data() + t * c.ffn_dim, c.ffn_dim);
    });
    run_linear(*L.down_proj, prefix + "down_proj", gate.data(), proj.data());
    for (int64_t i = 0; i < n * dim; ++i) x[i] += proj[i];
  }

  if (options.all_logits) {
    norm_rows(x.data(), output_norm_, xb.data());
    run_linear(*lm_head_, "lm_head", xb.data(), logits);
  } else {
    const float* last = x.data() + (n - 1) * dim;
    rms_norm(last, output_norm_.data(), dim, c.norm_eps, xb.data());
    if (options.observer != nullptr) options.observer->observe("lm_head", xb.data(), 1, dim);
    lm_head_->forward(xb.data(), 1, logits, pool);
  }
  return Status::ok_status();
}

}  // namespace lowbit
