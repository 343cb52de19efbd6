#include "pipeline/kld_probe.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "eval/metrics.h"
#include "model/ops.h"
#include "pipeline/layer_runner.h"

namespace lowbit {
namespace {

constexpr int64_t kHeadRows = 128;  // logits computed [128, vocab] at a time

// "layers.{i}.{suffix}" -> (i, suffix); (-1, "") for other names.
std::pair<int, std::string> split_linear_name(const std::string& name) {
  if (name.rfind("layers.", 0) != 0) return {-1, ""};
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos) return {-1, ""};
  try {
    return {std::stoi(name.substr(7, dot - 7)), name.substr(dot + 1)};
  } catch (const std::exception&) {
    return {-1, ""};
  }
}

bool is_linear_suffix(const std::string& suffix) {
  for (std::string_view s : DecoderBlock::kLinearSuffixes) {
    if (suffix == s) return true;
  }
  return false;
}

}  // namespace

KldProbe::KldProbe(const ModelConfig& config, ModelWeights weights, std::vector<int32_t> tokens, int n_seq, int seq_len)
    : config_(config), w_(std::move(weights)), tokens_(std::move(tokens)), n_seq_(n_seq), seq_len_(seq_len) {
  embedding_matrix_.rows = config_.vocab_size;
  embedding_matrix_.cols = config_.dim;
  embedding_matrix_.data = std::move(w_.token_embedding);
}

Expected<std::unique_ptr<KldProbe>> KldProbe::create(const ModelConfig& config, ModelWeights weights,
                                                     std::vector<int32_t> tokens, int n_seq, int seq_len,
                                                     ThreadPool& pool) {
  if (n_seq < 1 || seq_len < 1 || static_cast<int64_t>(tokens.size()) != static_cast<int64_t>(n_seq) * seq_len) {
    return make_error("KLD probe: {} tokens for {} windows of {}", tokens.size(), n_seq, seq_len);
  }
  if (static_cast<int>(weights.layers.size()) != config.n_layers) {
    return make_error("KLD probe: {} layers given, the model has {}", weights.layers.size(), config.n_layers);
  }
  std::unique_ptr<KldProbe> p(new KldProbe(config, std::move(weights), std::move(tokens), n_seq, seq_len));
  p->pool_ = &pool;
  for (int i = 0; i < config.n_layers; ++i) {
    LB_ASSIGN_OR_RETURN(DecoderBlock b, DecoderBlock::create(config, i, p->w_.layers[i], p->w_.rope_freq_factors));
    p->blocks_.push_back(std::move(b));
  }
  LB_ASSIGN_OR_RETURN(std::vector<float> x0, embed_tokens(p->embedding_matrix_.data, config, p->tokens_.data(),
                                                           static_cast<int64_t>(p->tokens_.size())));
  p->inputs_.resize(static_cast<size_t>(config.n_layers));
  LB_RETURN_IF_ERROR(p->run_from(0, std::move(x0), {}, true).status());
  return p;
}

Expected<const Matrix*> KldProbe::weight(const std::string& name) const {
  if (name == "token_embedding") return &embedding_matrix_;
  if (name == "lm_head") {
    if (w_.lm_head.empty()) return make_error("lm_head: tied to the token embedding, not a tensor of its own");
    return &w_.lm_head;
  }
  const auto [layer, suffix] = split_linear_name(name);
  if (layer < 0 || layer >= config_.n_layers || !is_linear_suffix(suffix)) {
    return make_error("KLD probe: no tensor named {}", name);
  }
  return &linear_matrix(w_.layers[layer], suffix);
}

Expected<double> KldProbe::kld_with(const std::map<std::string, const float*>& replaced) {
  int first = config_.n_layers;  // the head only
  const float* embedding = nullptr;
  for (const auto& [name, data] : replaced) {
    LB_RETURN_IF_ERROR(weight(name).status());
    if (name == "token_embedding") {
      embedding = data;
      first = 0;
    } else if (name != "lm_head") {
      first = std::min(first, split_linear_name(name).first);
    }
  }
  std::vector<float> x;
  if (embedding != nullptr) {
    std::vector<float> table(embedding, embedding + embedding_matrix_.data.size());
    LB_ASSIGN_OR_RETURN(x, embed_tokens(table, config_, tokens_.data(), static_cast<int64_t>(tokens_.size())));
  } else {
    x = first < config_.n_layers ? inputs_[first] : std::vector<float>();
  }
  return run_from(first, std::move(x), replaced, false);
}

Expected<double> KldProbe::run_from(int first, std::vector<float> x, const std::map<std::string, const float*>& replaced,
                                    bool store_base) {
  LayerRunner runner(config_, seq_len_);
  if (first == config_.n_layers && x.empty()) {
    // Only the head changes: the final hidden state is the last layer's output.
    x = inputs_.back();
    LB_RETURN_IF_ERROR(runner.run(blocks_.back(), x.data(), n_seq_, x.data(), *pool_));
  }
  for (int l = first; l < config_.n_layers; ++l) {
    if (store_base) inputs_[l] = x;  // [n_seq·seq_len, dim]
    // A layer with replaced linears runs as a block built from a copy of its weights.
    std::optional<LayerWeights> copy;
    for (std::string_view suffix : DecoderBlock::kLinearSuffixes) {
      auto r = replaced.find(fmt::format("layers.{}.{}", l, suffix));
      if (r == replaced.end()) continue;
      if (!copy) copy = w_.layers[l];
      Matrix& m = linear_matrix(*copy, suffix);
      std::copy(r->second, r->second + m.data.size(), m.data.begin());
    }
    std::optional<DecoderBlock> changed;
    if (copy) {
      LB_ASSIGN_OR_RETURN(changed, DecoderBlock::create(config_, l, std::move(*copy), w_.rope_freq_factors));
    }
    LB_RETURN_IF_ERROR(runner.run(changed ? *changed : blocks_[l], x.data(), n_seq_, x.data(), *pool_));
  }
  auto head = replaced.find("lm_head");
  return head_kld(x, head != replaced.end() ? head->second : nullptr, store_base);
}

Expected<double> KldProbe::head_kld(const std::vector<float>& hidden, const float* head_override, bool store_base) {
  const int dim = config_.dim;
  const int vocab = config_.vocab_size;
  const int64_t n = positions();
  const float* head = head_override != nullptr ? head_override
                      : w_.lm_head.empty()     ? embedding_matrix_.data.data()
                                               : w_.lm_head.data.data();
  if (store_base) base_logp_.assign(static_cast<size_t>(n) * vocab, 0.0f);
  std::vector<float> normed(static_cast<size_t>(kHeadRows) * dim);   // [rows, dim]
  std::vector<float> logits(static_cast<size_t>(kHeadRows) * vocab);  // [rows, vocab]
  std::vector<double> kld(static_cast<size_t>(n), 0.0);
  for (int64_t r0 = 0; r0 < n; r0 += kHeadRows) {
    const int64_t rows = std::min(kHeadRows, n - r0);
    for (int64_t r = 0; r < rows; ++r) {
      rms_norm(hidden.data() + (r0 + r) * dim, w_.output_norm.data(), dim, config_.norm_eps, normed.data() + r * dim);
    }
    // logits[rows, vocab] = normed[rows, dim] · head[vocab, dim]ᵀ
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), vocab, dim, 1.0f, normed.data(), dim,
                head, dim, 0.0f, logits.data(), vocab);
    pool_->parallel_for(rows, [&](int64_t b, int64_t e, int) {
      std::vector<double> logp;
      for (int64_t r = b; r < e; ++r) {
        log_softmax(logits.data() + r * vocab, vocab, logp);
        float* base = base_logp_.data() + (r0 + r) * vocab;
        if (store_base) {
          for (int v = 0; v < vocab; ++v) base[v] = static_cast<float>(logp[v]);
          continue;
        }
        double sum = 0.0;  // Σ p_base (log p_base − log p)
        for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(base[v])) * (base[v] - logp[v]);
        kld[r0 + r] = sum;
      }
    });
  }
  double total = 0.0;
  for (double k : kld) total += k;
  return total / static_cast<double>(n);
}

}  // namespace lowbit
