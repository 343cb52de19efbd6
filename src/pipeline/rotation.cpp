#include "pipeline/rotation.h"

#include <algorithm>
#include <initializer_list>

namespace lowbit {
namespace {

// W[:, j] ← W[:, j]·g[j]. m: [rows, cols], g: [cols].
void scale_columns(Matrix& m, const std::vector<float>& g) {
  for (int64_t r = 0; r < m.rows; ++r) {
    float* row = m.data.data() + r * m.cols;
    for (int64_t j = 0; j < m.cols; ++j) row[j] *= g[static_cast<size_t>(j)];
  }
}

// a: [rows, cols] → [cols, rows].
std::vector<float> transposed(const std::vector<float>& a, int64_t rows, int64_t cols) {
  std::vector<float> t(a.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) t[static_cast<size_t>(c * rows + r)] = a[static_cast<size_t>(r * cols + c)];
  }
  return t;
}

// W ← W·R on the input side: every row of W [rows, cols] is a row vector of
// length cols, split into segments of R's order (1 segment for a full-width R).
void rotate_inputs(Matrix& m, const Rotation& rot) {
  rot.apply(m.data.data(), m.rows * m.cols / rot.size());
}

// W ← Rᵀ·W on the output side, per segment of R's order along the rows (one
// segment for a full-height R): (Rᵀ·W)ᵀ = Wᵀ·R, so transpose, rotate the rows,
// transpose back. The bias is an output too: b ← b·R.
void rotate_outputs(Matrix& m, const Rotation& rot) {
  std::vector<float> t = transposed(m.data, m.rows, m.cols);  // [cols, rows]
  rot.apply(t.data(), m.cols * m.rows / rot.size());
  m.data = transposed(t, m.cols, m.rows);
  if (!m.bias.empty()) rot.apply(m.bias.data(), m.rows / rot.size());
}

Status check_sizes(const LayerWeights& w, const ModelConfig& c) {
  const auto bad = [&](const Matrix& m, int64_t rows, int64_t cols) {
    return m.rows != rows || m.cols != cols || static_cast<int64_t>(m.data.size()) != rows * cols;
  };
  if (static_cast<int>(w.attn_norm.size()) != c.dim || static_cast<int>(w.ffn_norm.size()) != c.dim ||
      bad(w.q_proj, c.q_dim(), c.dim) || bad(w.k_proj, c.kv_dim(), c.dim) || bad(w.v_proj, c.kv_dim(), c.dim) ||
      bad(w.o_proj, c.dim, c.q_dim()) || bad(w.gate_proj, c.ffn_dim, c.dim) || bad(w.up_proj, c.ffn_dim, c.dim) ||
      bad(w.down_proj, c.dim, c.ffn_dim)) {
    return make_error("a tensor's shape does not match the config; cannot rotate");
  }
  return Status::ok_status();
}

// A norm's shift b (n = rms_norm(x)·g + b, Outlier Suppression+) moves into the
// biases of the linears reading n: W·n = W·diag(g)·x̂ + W·b. Leaves b empty.
void fold_norm_bias(std::vector<float>& b, std::initializer_list<Matrix*> readers) {
  if (b.empty()) return;
  for (Matrix* m : readers) {
    if (m->bias.empty()) m->bias.assign(static_cast<size_t>(m->rows), 0.0f);
    for (int64_t r = 0; r < m->rows; ++r) {
      const float* row = m->data.data() + r * m->cols;
      double acc = 0.0;
      for (int64_t j = 0; j < m->cols; ++j) acc += static_cast<double>(row[j]) * b[static_cast<size_t>(j)];
      m->bias[static_cast<size_t>(r)] += static_cast<float>(acc);
    }
  }
  b.clear();
}

}  // namespace

Status rotate_layer(LayerWeights& w, const ModelConfig& c, const ModelRotations& r) {
  LB_RETURN_IF_ERROR(check_sizes(w, c));
  if (r.residual.size() != c.dim) {
    return make_error("a rotation of order {} for a residual stream of {}", r.residual.size(), c.dim);
  }
  fold_norm_bias(w.attn_norm_bias, {&w.q_proj, &w.k_proj, &w.v_proj});
  fold_norm_bias(w.ffn_norm_bias, {&w.gate_proj, &w.up_proj});
  for (Matrix* m : {&w.q_proj, &w.k_proj, &w.v_proj}) {
    scale_columns(*m, w.attn_norm);
    rotate_inputs(*m, r.residual);
  }
  for (Matrix* m : {&w.gate_proj, &w.up_proj}) {
    scale_columns(*m, w.ffn_norm);
    rotate_inputs(*m, r.residual);
  }
  std::fill(w.attn_norm.begin(), w.attn_norm.end(), 1.0f);
  std::fill(w.ffn_norm.begin(), w.ffn_norm.end(), 1.0f);
  rotate_outputs(w.o_proj, r.residual);
  rotate_outputs(w.down_proj, r.residual);
  if (r.down) rotate_inputs(w.down_proj, *r.down);
  if (r.v_head) {
    rotate_outputs(w.v_proj, *r.v_head);  // per kv head
    rotate_inputs(w.o_proj, *r.v_head);   // per q head
  }
  return Status::ok_status();
}

void rotate_embedding(std::vector<float>& embedding, const ModelRotations& r) {
  r.residual.apply(embedding.data(), static_cast<int64_t>(embedding.size()) / r.residual.size());
}

Matrix rotate_lm_head(const std::vector<float>& head, const ModelConfig& c, std::vector<float>& output_norm,
                      const ModelRotations& r) {
  Matrix m;
  m.rows = c.vocab_size;
  m.cols = c.dim;
  m.data = head;
  scale_columns(m, output_norm);
  rotate_inputs(m, r.residual);
  std::fill(output_norm.begin(), output_norm.end(), 1.0f);
  return m;
}

Status rotate_model(ModelWeights& weights, ModelConfig& config, const RotationSpec& spec) {
  LB_RETURN_IF_ERROR(weights.validate(config, "rotate_model"));
  const ModelRotations r = ModelRotations::create(config, spec);
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    LB_RETURN_IF_ERROR(rotate_layer(weights.layers[i], config, r).with_context(fmt::format("layers.{}", i)));
  }
  const std::vector<float>& head = config.tied_embeddings ? weights.token_embedding : weights.lm_head.data;
  weights.lm_head = rotate_lm_head(head, config, weights.output_norm, r);
  rotate_embedding(weights.token_embedding, r);
  config.tied_embeddings = false;
  return Status::ok_status();
}

}  // namespace lowbit
