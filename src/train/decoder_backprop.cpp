#include "train/decoder_backprop.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "model/decoder_block.h"
#include "model/ops.h"

namespace lowbit {
namespace {

using Vec = std::vector<float>;

// C [m, n] = alpha op(A) op(B) + beta C, row-major, op = transpose where ta / tb.
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}

// One LoRA linear: W [out, in] (+ bias), adapter (A, B), s.
struct LoraLinear {
  const Matrix* w;
  const LoraMatrix* lora;
  float scale;
  int rank;  // 0: no adapter on this linear

  // y [T, out] = x Wᵀ + bias + s u Bᵀ, u [T, r] = x Aᵀ (kept for the backward pass).
  void forward(const float* x, int64_t T, float* y, Vec& u) const {
    const int64_t in = w->cols, out = w->rows;
    gemm(false, true, T, out, in, 1.0f, x, in, w->data.data(), in, 0.0f, y, out);
    if (!w->bias.empty()) {
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t o = 0; o < out; ++o) y[t * out + o] += w->bias[static_cast<size_t>(o)];
      }
    }
    if (rank == 0) return;
    u.assign(static_cast<size_t>(T * rank), 0.0f);
    gemm(false, true, T, rank, in, 1.0f, x, in, lora->a.data(), in, 0.0f, u.data(), rank);
    gemm(false, true, T, out, rank, scale, u.data(), rank, lora->b.data(), rank, 1.0f, y, out);
  }

  // dx [T, in] = dy W + s (dy B) A (added to dx when accumulate); g (A, B) += the adapter's gradient.
  void backward(const float* x, const Vec& u, const float* dy, int64_t T, float* dx, bool accumulate,
                LoraMatrix* g) const {
    const int64_t in = w->cols, out = w->rows;
    gemm(false, false, T, in, out, 1.0f, dy, out, w->data.data(), in, accumulate ? 1.0f : 0.0f, dx, in);
    if (rank == 0) return;
    Vec du(static_cast<size_t>(T * rank));  // [T, r] = s dy B
    gemm(false, false, T, rank, out, scale, dy, out, lora->b.data(), rank, 0.0f, du.data(), rank);
    if (g != nullptr) {
      gemm(true, false, out, rank, T, scale, dy, out, u.data(), rank, 1.0f, g->b.data(), rank);  // dB += s dyᵀ u
      gemm(true, false, rank, in, T, 1.0f, du.data(), rank, x, in, 1.0f, g->a.data(), in);      // dA += duᵀ x
    }
    gemm(false, false, T, in, rank, 1.0f, du.data(), rank, lora->a.data(), in, 1.0f, dx, in);
  }
};

// n [T, dim] = rms_norm(x) · w + b (b may be empty); rinv [T] = 1 / rms(x).
void norm_forward(const float* x, const Vec& w, const Vec& b, int64_t T, int64_t dim, float eps, float* n,
                  Vec& rinv) {
  rinv.resize(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    const float* xt = x + t * dim;
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xt[i]) * xt[i];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    rinv[static_cast<size_t>(t)] = r;
    for (int64_t i = 0; i < dim; ++i) {
      n[t * dim + i] = xt[i] * r * w[static_cast<size_t>(i)] + (b.empty() ? 0.0f : b[static_cast<size_t>(i)]);
    }
  }
}

// dx [T, dim] += d rms_norm(x) · w against dn.
void norm_backward(const float* x, const Vec& w, const Vec& rinv, const float* dn, int64_t T, int64_t dim, float* dx) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xt = x + t * dim;
    const float* dnt = dn + t * dim;
    double gx = 0.0;
    for (int64_t i = 0; i < dim; ++i) gx += static_cast<double>(dnt[i]) * w[static_cast<size_t>(i)] * xt[i];
    const double r = rinv[static_cast<size_t>(t)];
    const double c = r * r * r * gx / static_cast<double>(dim);
    for (int64_t i = 0; i < dim; ++i) {
      dx[t * dim + i] += static_cast<float>(r * dnt[i] * w[static_cast<size_t>(i)] - c * xt[i]);
    }
  }
}

double sigmoid(double g) { return 1.0 / (1.0 + std::exp(-g)); }

// What the forward pass of one layer keeps.
struct LayerTape {
  Vec x_in, rinv1, n1, q, k, v, probs, o, x_mid, rinv2, n2, gate, up, h;
  std::array<Vec, 7> u;  // x Aᵀ of each linear
};

struct Dims {
  int64_t T, dim, qd, kvd, ffn, hd, heads, kv_heads;
};

// o [T, q_dim] = causal attention of q [T, q_dim], k, v [T, kv_dim]; probs [heads, T, T].
void attention_forward(const Dims& d, const Vec& q, const Vec& k, const Vec& v, Vec& probs, Vec& o) {
  const int64_t T = d.T, hd = d.hd, group = d.heads / d.kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  probs.assign(static_cast<size_t>(d.heads * T * T), 0.0f);
  o.assign(static_cast<size_t>(T * d.qd), 0.0f);
  for (int64_t h = 0; h < d.heads; ++h) {
    const int64_t kvh = h / group;
    float* p = probs.data() + h * T * T;
    gemm(false, true, T, T, hd, scale, q.data() + h * hd, d.qd, k.data() + kvh * hd, d.kvd, 0.0f, p, T);
    for (int64_t t = 0; t < T; ++t) {
      float* row = p + t * T;
      softmax(row, t + 1);
      std::fill(row + t + 1, row + T, 0.0f);  // causal: later positions get 0
    }
    gemm(false, false, T, hd, T, 1.0f, p, T, v.data() + kvh * hd, d.kvd, 0.0f, o.data() + h * hd, d.qd);
  }
}

// dq [T, q_dim], dk, dv [T, kv_dim] (overwritten) from do_ [T, q_dim].
void attention_backward(const Dims& d, const LayerTape& tape, const Vec& do_, Vec& dq, Vec& dk, Vec& dv) {
  const int64_t T = d.T, hd = d.hd, group = d.heads / d.kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  dq.assign(static_cast<size_t>(T * d.qd), 0.0f);
  dk.assign(static_cast<size_t>(T * d.kvd), 0.0f);
  dv.assign(static_cast<size_t>(T * d.kvd), 0.0f);
  Vec ds(static_cast<size_t>(T * T));
  for (int64_t h = 0; h < d.heads; ++h) {
    const int64_t kvh = h / group;
    const float* p = tape.probs.data() + h * T * T;
    // dP = dO Vᵀ, then dS = P ⊙ (dP - rowsum(P ⊙ dP)), 0 above the diagonal.
    gemm(false, true, T, T, hd, 1.0f, do_.data() + h * hd, d.qd, tape.v.data() + kvh * hd, d.kvd, 0.0f, ds.data(), T);
    for (int64_t t = 0; t < T; ++t) {
      float* row = ds.data() + t * T;
      const float* pr = p + t * T;
      double dot = 0.0;
      for (int64_t u = 0; u <= t; ++u) dot += static_cast<double>(pr[u]) * row[u];
      for (int64_t u = 0; u <= t; ++u) row[u] = static_cast<float>(pr[u] * (row[u] - dot));
      std::fill(row + t + 1, row + T, 0.0f);
    }
    gemm(true, false, T, hd, T, 1.0f, p, T, do_.data() + h * hd, d.qd, 1.0f, dv.data() + kvh * hd, d.kvd);
    gemm(false, false, T, hd, T, scale, ds.data(), T, tape.k.data() + kvh * hd, d.kvd, 0.0f, dq.data() + h * hd, d.qd);
    gemm(true, false, T, hd, T, scale, ds.data(), T, tape.q.data() + h * hd, d.qd, 1.0f, dk.data() + kvh * hd, d.kvd);
  }
}

}  // namespace

Expected<double> lora_window_loss(const ModelConfig& c, const ModelWeights& base, const LoraAdapters& lora,
                                  const int32_t* tokens, int T, LoraAdapters* grads) {
  if (T < 2) return make_error("lora training: a window of {} tokens has no next-token target (need >= 2)", T);
  if (static_cast<int>(lora.layers.size()) != c.n_layers || static_cast<int>(base.layers.size()) != c.n_layers) {
    return make_error("lora training: {} adapter layers and {} weight layers for a model of {}", lora.layers.size(),
                      base.layers.size(), c.n_layers);
  }
  for (int t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      return make_error("lora training: token {} at position {} is outside the vocabulary ({})", tokens[t], t,
                        c.vocab_size);
    }
  }
  const Dims d{T, c.dim, c.q_dim(), c.kv_dim(), c.ffn_dim, c.head_dim, c.n_heads, c.n_kv_heads};
  const std::vector<double> inv_freq = rope_inverse_frequencies(c, base.rope_freq_factors);
  const auto linear = [&](int layer, int k) {
    const LayerWeights& lw = base.layers[static_cast<size_t>(layer)];
    return LoraLinear{&linear_matrix(lw, DecoderBlock::kLinearSuffixes[static_cast<size_t>(k)]),
                      &lora.layers[static_cast<size_t>(layer)][static_cast<size_t>(k)], lora.scale,
                      lora.layers[static_cast<size_t>(layer)][static_cast<size_t>(k)].active() ? lora.rank : 0};
  };
  const auto grad_of = [&](int layer, int k) -> LoraMatrix* {
    return grads == nullptr ? nullptr : &grads->layers[static_cast<size_t>(layer)][static_cast<size_t>(k)];
  };

  // ---- forward ----
  Vec x(static_cast<size_t>(T * d.dim));  // [T, dim] the residual stream
  for (int t = 0; t < T; ++t) {
    std::copy_n(base.token_embedding.data() + static_cast<int64_t>(tokens[t]) * d.dim, d.dim, x.data() + t * d.dim);
  }
  std::vector<LayerTape> tapes(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = base.layers[static_cast<size_t>(l)];
    LayerTape& tp = tapes[static_cast<size_t>(l)];
    tp.x_in = x;
    tp.n1.resize(x.size());
    norm_forward(x.data(), lw.attn_norm, lw.attn_norm_bias, T, d.dim, c.norm_eps, tp.n1.data(), tp.rinv1);
    tp.q.resize(static_cast<size_t>(T * d.qd));
    tp.k.resize(static_cast<size_t>(T * d.kvd));
    tp.v.resize(static_cast<size_t>(T * d.kvd));
    linear(l, 0).forward(tp.n1.data(), T, tp.q.data(), tp.u[0]);
    linear(l, 1).forward(tp.n1.data(), T, tp.k.data(), tp.u[1]);
    linear(l, 2).forward(tp.n1.data(), T, tp.v.data(), tp.u[2]);
    for (int t = 0; t < T; ++t) {
      apply_rope_qk(tp.q.data() + t * d.qd, c.n_heads, tp.k.data() + t * d.kvd, c.n_kv_heads, c.head_dim, t,
                    c.rope_layout, inv_freq);
    }
    attention_forward(d, tp.q, tp.k, tp.v, tp.probs, tp.o);
    Vec a(static_cast<size_t>(T * d.dim));
    linear(l, 3).forward(tp.o.data(), T, a.data(), tp.u[3]);
    for (size_t i = 0; i < x.size(); ++i) x[i] += a[i];
    tp.x_mid = x;
    tp.n2.resize(x.size());
    norm_forward(x.data(), lw.ffn_norm, lw.ffn_norm_bias, T, d.dim, c.norm_eps, tp.n2.data(), tp.rinv2);
    tp.gate.resize(static_cast<size_t>(T * d.ffn));
    tp.up.resize(tp.gate.size());
    linear(l, 4).forward(tp.n2.data(), T, tp.gate.data(), tp.u[4]);
    linear(l, 5).forward(tp.n2.data(), T, tp.up.data(), tp.u[5]);
    tp.h = tp.gate;
    swiglu(tp.h.data(), tp.up.data(), static_cast<int64_t>(tp.h.size()));
    linear(l, 6).forward(tp.h.data(), T, a.data(), tp.u[6]);
    for (size_t i = 0; i < x.size(); ++i) x[i] += a[i];
  }
  Vec nf(x.size()), rinvf;
  norm_forward(x.data(), base.output_norm, {}, T, d.dim, c.norm_eps, nf.data(), rinvf);
  const float* head = base.lm_head.empty() ? base.token_embedding.data() : base.lm_head.data.data();  // [vocab, dim]
  const int64_t V = c.vocab_size;
  Vec logits(static_cast<size_t>(T * V));  // [T, vocab], then d loss / d logits
  gemm(false, true, T, V, d.dim, 1.0f, nf.data(), d.dim, head, d.dim, 0.0f, logits.data(), V);
  double loss = 0.0;
  const double inv_targets = 1.0 / (T - 1);
  for (int t = 0; t < T; ++t) {
    float* row = logits.data() + t * V;
    if (t == T - 1) {  // no target: no gradient
      std::fill(row, row + V, 0.0f);
      continue;
    }
    const float mx = *std::max_element(row, row + V);
    double z = 0.0;
    for (int64_t i = 0; i < V; ++i) z += std::exp(static_cast<double>(row[i]) - mx);
    const int32_t target = tokens[t + 1];
    loss += std::log(z) + mx - row[target];
    for (int64_t i = 0; i < V; ++i) row[i] = static_cast<float>(std::exp(row[i] - mx) / z * inv_targets);
    row[target] -= static_cast<float>(inv_targets);
  }
  loss *= inv_targets;
  if (grads == nullptr) return loss;

  // ---- backward ----
  Vec dnf(x.size());
  gemm(false, false, T, d.dim, V, 1.0f, logits.data(), V, head, d.dim, 0.0f, dnf.data(), d.dim);
  Vec dx(x.size(), 0.0f);  // d loss / d residual stream
  norm_backward(x.data(), base.output_norm, rinvf, dnf.data(), T, d.dim, dx.data());
  Vec dn(x.size()), dh, dgate, dup, do_, dq, dk, dv;
  for (int l = c.n_layers - 1; l >= 0; --l) {
    const LayerWeights& lw = base.layers[static_cast<size_t>(l)];
    const LayerTape& tp = tapes[static_cast<size_t>(l)];
    // x = x_mid + down(h)
    dh.resize(tp.h.size());
    linear(l, 6).backward(tp.h.data(), tp.u[6], dx.data(), T, dh.data(), false, grad_of(l, 6));
    dgate.resize(tp.gate.size());
    dup.resize(tp.gate.size());
    for (size_t i = 0; i < tp.gate.size(); ++i) {
      const double g = tp.gate[i], s = sigmoid(g);
      dup[i] = static_cast<float>(dh[i] * g * s);
      dgate[i] = static_cast<float>(dh[i] * tp.up[i] * s * (1.0 + g * (1.0 - s)));
    }
    linear(l, 4).backward(tp.n2.data(), tp.u[4], dgate.data(), T, dn.data(), false, grad_of(l, 4));
    linear(l, 5).backward(tp.n2.data(), tp.u[5], dup.data(), T, dn.data(), true, grad_of(l, 5));
    norm_backward(tp.x_mid.data(), lw.ffn_norm, tp.rinv2, dn.data(), T, d.dim, dx.data());
    // x_mid = x_in + o_proj(attention)
    do_.resize(tp.o.size());
    linear(l, 3).backward(tp.o.data(), tp.u[3], dx.data(), T, do_.data(), false, grad_of(l, 3));
    attention_backward(d, tp, do_, dq, dk, dv);
    for (int t = 0; t < T; ++t) {  // RoPE's transpose: the rotation by -pos
      apply_rope_qk(dq.data() + t * d.qd, c.n_heads, dk.data() + t * d.kvd, c.n_kv_heads, c.head_dim, -t,
                    c.rope_layout, inv_freq);
    }
    linear(l, 0).backward(tp.n1.data(), tp.u[0], dq.data(), T, dn.data(), false, grad_of(l, 0));
    linear(l, 1).backward(tp.n1.data(), tp.u[1], dk.data(), T, dn.data(), true, grad_of(l, 1));
    linear(l, 2).backward(tp.n1.data(), tp.u[2], dv.data(), T, dn.data(), true, grad_of(l, 2));
    norm_backward(tp.x_in.data(), lw.attn_norm, tp.rinv1, dn.data(), T, d.dim, dx.data());
  }
  return loss;
}

}  // namespace lowbit
