#include "model/weights.h"

#include <cmath>

namespace lowbit {
namespace {


Status check_vector(const std::vector<float>& v, size_t expected, const std::string& tensor,
                    const std::string& source) {
  if (v.size() != expected) {
    return make_error("{}: tensor '{}' has {} elements, expected {}", source, tensor, v.size(), expected);
  }
  return check_finite_weights(v, tensor, source);
}

Status check_matrix(const Matrix& m, int64_t rows, int64_t cols, bool bias, const std::string& tensor,
                    const std::string& source) {
  if (m.rows != rows || m.cols != cols || m.data.size() != static_cast<size_t>(rows * cols)) {
    return make_error("{}: tensor '{}' has shape [{}, {}], expected [{}, {}]", source, tensor, m.rows,
                      m.cols, rows, cols);
  }
  LB_RETURN_IF_ERROR(check_finite_weights(m.data, tensor, source));
  if (bias) {
    LB_RETURN_IF_ERROR(check_vector(m.bias, static_cast<size_t>(rows), tensor + ".bias", source));
  } else if (!m.bias.empty()) {
    LB_RETURN_IF_ERROR(check_vector(m.bias, static_cast<size_t>(rows), tensor + ".bias", source));
  }
  return Status::ok_status();
}

}  // namespace

Status check_finite_weights(const std::vector<float>& values, const std::string& tensor, const std::string& source) {
  size_t bad = 0;
  size_t first = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      if (bad == 0) first = i;
      ++bad;
    }
  }
  if (bad == 0) return Status::ok_status();
  return make_error("{}: tensor '{}': {} NaN/Inf value{} in the weights (the first, {}, at index {})", source, tensor,
                    bad, bad == 1 ? "" : "s", values[first], first);
}

Status ModelWeights::validate(const ModelConfig& c, const std::string& source) const {
  LB_RETURN_IF_ERROR(check_vector(token_embedding, static_cast<size_t>(c.vocab_size) * c.dim,
                                  "token_embedding", source));
  if (layers.size() != static_cast<size_t>(c.n_layers)) {
    return make_error("{}: {} layers loaded, config says {}", source, layers.size(), c.n_layers);
  }
  for (int i = 0; i < c.n_layers; ++i) {
    const LayerWeights& l = layers[i];
    const std::string p = fmt::format("layers.{}.", i);
    LB_RETURN_IF_ERROR(check_vector(l.attn_norm, c.dim, p + "attn_norm", source));
    LB_RETURN_IF_ERROR(check_vector(l.ffn_norm, c.dim, p + "ffn_norm", source));
    LB_RETURN_IF_ERROR(check_matrix(l.q_proj, c.q_dim(), c.dim, c.qkv_bias, p + "q_proj", source));
    LB_RETURN_IF_ERROR(check_matrix(l.k_proj, c.kv_dim(), c.dim, c.qkv_bias, p + "k_proj", source));
    LB_RETURN_IF_ERROR(check_matrix(l.v_proj, c.kv_dim(), c.dim, c.qkv_bias, p + "v_proj", source));
    LB_RETURN_IF_ERROR(check_matrix(l.o_proj, c.dim, c.q_dim(), false, p + "o_proj", source));
    LB_RETURN_IF_ERROR(check_matrix(l.gate_proj, c.ffn_dim, c.dim, false, p + "gate_proj", source));
    LB_RETURN_IF_ERROR(check_matrix(l.up_proj, c.ffn_dim, c.dim, false, p + "up_proj", source));
    LB_RETURN_IF_ERROR(check_matrix(l.down_proj, c.dim, c.ffn_dim, false, p + "down_proj", source));
  }
  LB_RETURN_IF_ERROR(check_vector(output_norm, c.dim, "output_norm", source));
  if (c.tied_embeddings) {
    if (!lm_head.empty()) return make_error("{}: lm_head present but embeddings are tied", source);
  } else {
    LB_RETURN_IF_ERROR(check_matrix(lm_head, c.vocab_size, c.dim, false, "lm_head", source));
  }
  if (!rope_freq_factors.empty()) {
    LB_RETURN_IF_ERROR(check_vector(rope_freq_factors, c.head_dim / 2, "rope_freqs", source));
  }
  return Status::ok_status();
}

const Matrix& linear_matrix(const LayerWeights& w, std::string_view suffix) {
  if (suffix == "q_proj") return w.q_proj;
  if (suffix == "k_proj") return w.k_proj;
  if (suffix == "v_proj") return w.v_proj;
  if (suffix == "o_proj") return w.o_proj;
  if (suffix == "gate_proj") return w.gate_proj;
  if (suffix == "up_proj") return w.up_proj;
  return w.down_proj;
}

Matrix& linear_matrix(LayerWeights& w, std::string_view suffix) {
  return const_cast<Matrix&>(linear_matrix(static_cast<const LayerWeights&>(w), suffix));
}

}  // namespace lowbit
