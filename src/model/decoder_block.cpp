#include "model/decoder_block.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <span>

#include "core/blas_threads.h"
#include "model/attention_blocks.h"
#include "model/attention_bf16.h"
#include "model/attention_fixed_order.h"
#include "kernels/fixed_order.h"
#include "model/bf16_linear.h"
#include "model/block_shapes.h"
#include "model/model_source.h"
#include "model/ops.h"
#include "model/packed_linear.h"
#include "quant/attn_prob_quant.h"

namespace lowbit {
namespace {

// Positions in kLinearSuffixes.
enum LinearIndex : size_t { kQ, kK, kV, kO, kGate, kUp, kDown };

}  // namespace

Status check_replacement_shape(const std::string& name, const Linear& current, const Linear& replacement) {
  if (replacement.in_features() != current.in_features() || replacement.out_features() != current.out_features()) {
    return make_error("linear '{}': replacement is [{}, {}], layer is [{}, {}]", name, replacement.out_features(),
                      replacement.in_features(), current.out_features(), current.in_features());
  }
  return Status::ok_status();
}

void BlockScratch::resize(const ModelConfig& c, int64_t n, int64_t n_pos) {
  xb.resize(n * c.dim);
  q.resize(n * c.q_dim());
  k.resize(n * c.kv_dim());
  v.resize(n * c.kv_dim());
  attn.resize(n * c.q_dim());
  proj.resize(n * c.dim);
  gate.resize(n * c.ffn_dim);
  up.resize(n * c.ffn_dim);
}

Expected<DecoderBlock> DecoderBlock::create(const ModelConfig& config, int index, LayerWeights w,
                                            const std::vector<float>& rope_freq_factors) {
  LB_RETURN_IF_ERROR(validate_layer_weights(w, config, index, "decoder block"));
  std::array<std::unique_ptr<Linear>, 7> linears;
  for (size_t k = 0; k < kLinearSuffixes.size(); ++k) {
    linears[k] = std::make_unique<DenseLinear>(std::move(linear_matrix(w, kLinearSuffixes[k])));
  }
  return create(config, index, std::move(w), std::move(linears), rope_freq_factors);
}

Expected<DecoderBlock> DecoderBlock::create(const ModelConfig& config, int index, LayerWeights norms,
                                            std::array<std::unique_ptr<Linear>, 7> linears,
                                            const std::vector<float>& rope_freq_factors) {
  const std::string where = fmt::format("decoder block {}", index);
  auto check_norm = [&](const std::vector<float>& v, bool optional, const char* name) -> Status {
    if ((optional && v.empty()) || v.size() == static_cast<size_t>(config.dim)) return Status::ok_status();
    return make_error("{}: {} has {} values, expected {}", where, name, v.size(), config.dim);
  };
  LB_RETURN_IF_ERROR(check_norm(norms.attn_norm, false, "attn_norm"));
  LB_RETURN_IF_ERROR(check_norm(norms.ffn_norm, false, "ffn_norm"));
  LB_RETURN_IF_ERROR(check_norm(norms.attn_norm_bias, true, "attn_norm_bias"));
  LB_RETURN_IF_ERROR(check_norm(norms.ffn_norm_bias, true, "ffn_norm_bias"));
  const std::array<LinearShape, 7> shapes = block_linear_shapes(config);
  DecoderBlock b;
  for (size_t k = 0; k < kLinearSuffixes.size(); ++k) {
    b.names_[k] = fmt::format("layers.{}.{}", index, kLinearSuffixes[k]);
    if (!linear_matrix(norms, kLinearSuffixes[k]).empty()) {
      return make_error("{}: {} given both as a matrix and as a layer", where, b.names_[k]);
    }
    const Linear* l = linears[k].get();
    if (l == nullptr || l->out_features() != shapes[k].rows || l->in_features() != shapes[k].cols) {
      return make_error("{}: {} missing or not [{}, {}]", where, b.names_[k], shapes[k].rows, shapes[k].cols);
    }
  }
  b.config_ = config;
  b.index_ = index;
  b.rope_inv_freq_ = rope_inverse_frequencies(config, rope_freq_factors);
  b.attn_norm_ = std::move(norms.attn_norm);
  b.ffn_norm_ = std::move(norms.ffn_norm);
  b.attn_norm_bias_ = std::move(norms.attn_norm_bias);
  b.ffn_norm_bias_ = std::move(norms.ffn_norm_bias);
  b.linears_ = std::move(linears);
  b.group_shared_inputs();
  return b;
}

const Linear* DecoderBlock::find_linear(std::string_view suffix) const {
  for (size_t k = 0; k < kLinearSuffixes.size(); ++k) {
    if (kLinearSuffixes[k] == suffix) return linears_[k].get();
  }
  return nullptr;
}

Linear* DecoderBlock::find_linear(std::string_view suffix) {
  return const_cast<Linear*>(static_cast<const DecoderBlock&>(*this).find_linear(suffix));
}

PromptAttention bf16_prompt_attention(Isa isa) {
  return [isa](const ModelConfig& c, const float* q, int n_tokens, int pos, const float* keys, const float* values,
               float* out, ThreadPool& pool) { attention_bf16(c, q, n_tokens, pos, keys, values, out, pool, isa); };
}

Status DecoderBlock::replace_linear(std::string_view suffix, std::unique_ptr<Linear> replacement) {
  for (size_t k = 0; k < kLinearSuffixes.size(); ++k) {
    if (kLinearSuffixes[k] != suffix) continue;
    LB_RETURN_IF_ERROR(check_replacement_shape(names_[k], *linears_[k], *replacement));
    linears_[k] = std::move(replacement);
    group_shared_inputs();
    return Status::ok_status();
  }
  return make_error("no linear layer named 'layers.{}.{}'", index_, suffix);
}

Status DecoderBlock::wrap_linear(std::string_view suffix, const LinearWrapper& wrap) {
  for (size_t k = 0; k < kLinearSuffixes.size(); ++k) {
    if (kLinearSuffixes[k] != suffix) continue;
    const int64_t in = linears_[k]->in_features(), out = linears_[k]->out_features();
    linears_[k] = wrap(std::move(linears_[k]));
    group_shared_inputs();
    if (linears_[k] == nullptr || linears_[k]->in_features() != in || linears_[k]->out_features() != out) {
      return make_error("linear '{}': the wrapper changed the layer's shape [{}, {}]", names_[k], out, in);
    }
    return Status::ok_status();
  }
  return make_error("no linear layer named 'layers.{}.{}'", index_, suffix);
}

void DecoderBlock::group_shared_inputs() {
  // The layers ks as `L` (as_l: the Linear accessor, null for another kind) when all
  // are of that kind and read the input alike (shares: the kind's own test), else none.
  auto group = [&]<typename L>(std::initializer_list<size_t> ks, const L* (Linear::*as_l)() const,
                               bool (L::*shares)(const L&) const) {
    std::vector<const L*> g;
    for (size_t k : ks) {
      const L* p = linears_[k] != nullptr ? ((*linears_[k]).*as_l)() : nullptr;
      if (p == nullptr || (!g.empty() && !(g[0]->*shares)(*p))) return std::vector<const L*>();
      g.push_back(p);
    }
    return g;
  };
  const auto packed = &Linear::packed_linear;
  const auto bf16 = &Linear::bf16_linear;
  shared_inputs_ = {group({kQ, kK, kV}, packed, &PackedLinear::shares_decode_input),
                    group({kGate, kUp}, packed, &PackedLinear::shares_decode_input)};
  bf16_shared_inputs_ = {group({kQ, kK, kV}, bf16, &Bf16Linear::shares_input),
                         group({kGate, kUp}, bf16, &Bf16Linear::shares_input)};
}

uint64_t DecoderBlock::weight_bytes() const {
  uint64_t bytes = (attn_norm_.size() + ffn_norm_.size() + attn_norm_bias_.size() + ffn_norm_bias_.size()) * sizeof(float);
  for (const auto& lin : linears_) bytes += lin->weight_bytes();
  return bytes;
}

// The attention runs its heads on the pool's threads, each calling sgemm, under
// SingleThreadedBlas (core/blas_threads.h): OpenBLAS's spinning workers took ~10%
// of a W4A8 prompt's CPU samples on 2 cores.

// Causal grouped-query attention of the new tokens (queries in s.q after RoPE,
// keys/values in s.k/s.v, keys after RoPE unless the cache takes them before)
// over cached positions [0, pos + n_tokens); result in s.attn.
//
// When the cache keeps recent positions exact (layout.recent_fp) and a batch is
// written at once, query t must see positions [key_from[t], pos + t] exactly, as
// it would decoding token by token, though the batch's write has coded some of
// them: those exact rows, positions [from, n_pos), are kept aside (read before
// the write, or taken from this batch) and each query's band of them (at most
// R + T positions) is scored and weighted separately.
Status DecoderBlock::attention(int n_tokens, int pos, KvCache& cache, int cache_layer, const KvCacheLayout& layout,
                               BlockScratch& s, ThreadPool& pool) const {
  const ModelConfig& c = config_;
  const int hd = c.head_dim;
  const int kv_dim = c.kv_dim();
  const int n_pos = pos + n_tokens;  // positions visible to the last token
  const int group = c.n_heads / c.n_kv_heads;
  const float attn_scale = 1.0f / std::sqrt(static_cast<float>(hd));
  if (fixed_order_ && (layout.recent_fp || layout.keys_rotated || layout.values_rotated || layout.keys_before_rope)) {
    return make_error("layers.{}: the deterministic forward needs an FP32 KV cache (this one rotates, keeps keys "
                      "before RoPE or keeps recent positions apart)",
                      index_);
  }
  const bool mixed = layout.recent_fp && n_tokens > 1;
  int from = n_pos;  // exact rows [from, n_pos) when mixed
  if (mixed) {
    s.key_from.resize(n_tokens);
    s.value_from.resize(n_tokens);
    for (int t = 0; t < n_tokens; ++t) {
      s.key_from[t] = cache.fp_from(cache_layer, true, pos + t);
      s.value_from[t] = cache.fp_from(cache_layer, false, pos + t);
    }
    from = std::min({s.key_from[0], s.value_from[0], pos});
    s.k_exact.resize(static_cast<size_t>(n_pos - from) * kv_dim);  // [n_pos - from, kv_dim]
    s.v_exact.resize(static_cast<size_t>(n_pos - from) * kv_dim);
    if (from < pos) cache.read_rows(cache_layer, from, pos, s.k_exact.data(), s.v_exact.data());
    const size_t at = static_cast<size_t>(pos - from) * kv_dim;
    std::copy(s.k.begin(), s.k.begin() + static_cast<int64_t>(n_tokens) * kv_dim, s.k_exact.begin() + at);
    std::copy(s.v.begin(), s.v.begin() + static_cast<int64_t>(n_tokens) * kv_dim, s.v_exact.begin() + at);
    // This batch's rows into the space read() returns.
    if (layout.keys_rotated) cache.rotate_heads(s.k_exact.data() + at, static_cast<int64_t>(n_tokens) * c.n_kv_heads);
    if (layout.values_rotated) {
      cache.rotate_heads(s.v_exact.data() + at, static_cast<int64_t>(n_tokens) * c.n_kv_heads);
    }
  }
  LB_RETURN_IF_ERROR(cache.write(cache_layer, pos, n_tokens, s.k.data(), s.v.data())
                         .with_context(fmt::format("layers.{}: KV cache", index_)));
  if (fixed_order_) {
    const float* keys = cache.fp32_keys(cache_layer);
    const float* values = cache.fp32_values(cache_layer);
    if (keys == nullptr || values == nullptr) {
      return make_error("layers.{}: the deterministic forward needs an FP32 KV cache, not a quantized one", index_);
    }
    attention_fixed_order(c, s.q.data(), n_tokens, pos, keys, values, s.attn.data(), pool, fixed_order_isa_);
    return Status::ok_status();
  }
  // One token: the cache may attend from its storage in place (no [n_pos, kv_dim] FP32 copy).
  if (n_tokens == 1 && !prob_quant_ &&
      cache.attend_decode(cache_layer, n_pos, s.q.data(), c.n_heads, attn_scale, s.attn.data(), pool)) {
    return Status::ok_status();
  }
  const float* keys = cache.fp32_keys(cache_layer);
  const float* values = cache.fp32_values(cache_layer);
  if (keys == nullptr || values == nullptr || layout.keys_before_rope) {
    s.k_read.resize(static_cast<size_t>(n_pos) * kv_dim);
    s.v_read.resize(static_cast<size_t>(n_pos) * kv_dim);
    cache.read(cache_layer, n_pos, s.k_read.data(), s.v_read.data());
    if (layout.keys_before_rope) {
      pool.parallel_for(n_pos, [&](int64_t b, int64_t e, int) {
        for (int64_t p = b; p < e; ++p) {
          apply_rope(s.k_read.data() + p * kv_dim, c.n_kv_heads, hd, static_cast<int>(p), c.rope_layout,
                     rope_inv_freq_);
          if (p >= from) {
            apply_rope(s.k_exact.data() + (p - from) * kv_dim, c.n_kv_heads, hd, static_cast<int>(p), c.rope_layout,
                       rope_inv_freq_);
          }
        }
      });
    }
    keys = s.k_read.data();
    values = s.v_read.data();
  }
  if (prompt_attention_ && !prob_quant_ && !mixed && !layout.keys_rotated && !layout.values_rotated &&
      !layout.keys_before_rope && n_tokens > 1) {
    prompt_attention_(c, s.q.data(), n_tokens, pos, keys, values, s.attn.data(), pool);
    return Status::ok_status();
  }
  // Rotated storage: q·k = (qR)·(kR), so the queries are rotated to match.
  if (layout.keys_rotated) cache.rotate_heads(s.q.data(), static_cast<int64_t>(n_tokens) * c.n_heads);
  // One token: the heads of one KV head as one product each way (below); never
  // mixed (exact rows kept apart only for a batch's write).
  if (n_tokens == 1 && !prob_quant_) {
    decode_attention(n_pos, keys, values, s, pool);
    if (layout.values_rotated) cache.unrotate_heads(s.attn.data(), c.n_heads);
    return Status::ok_status();
  }
  // The heads are split across the pool; each thread has its own scores and
  // exact-share rows and calls a single-threaded BLAS (see SingleThreadedBlas).
  const int threads = pool.size();
  const size_t score_rows = static_cast<size_t>(n_tokens) * n_pos;
  if (s.scores.size() < threads * score_rows) s.scores.resize(threads * score_rows);
  if (mixed) s.attn_exact.resize(static_cast<size_t>(threads) * n_tokens * hd);
  const SingleThreadedBlas one_thread_blas;
  pool.parallel_for(c.n_heads, [&](int64_t h0, int64_t h1, int index) {
    float* scores = s.scores.data() + index * score_rows;               // [n, n_pos]
    float* attn_exact = mixed ? s.attn_exact.data() + static_cast<size_t>(index) * n_tokens * hd : nullptr;  // [n, hd]
    for (int h = static_cast<int>(h0); h < h1; ++h) {
      const int kvh = h / group;
      // scores[n, n_pos] = q_h[n, hd] · k_kvh[n_pos, hd]ᵀ / sqrt(hd), per block of
      // query rows only up to the last position the block sees (causal: about
      // half of the square for a long prompt is never computed).
      for (int r0 = 0; r0 < n_tokens; r0 += kAttnRowBlock) {
        const int rows = std::min(kAttnRowBlock, n_tokens - r0), seen = pos + r0 + rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, seen, hd, attn_scale,
                    s.q.data() + static_cast<int64_t>(r0) * c.q_dim() + h * hd, c.q_dim(), keys + kvh * hd, kv_dim,
                    0.0f, scores + static_cast<int64_t>(r0) * n_pos, n_pos);
      }
      // Causal mask: token t (position pos+t) sees positions [0, pos+t].
      for (int64_t t = 0; t < n_tokens; ++t) {
        float* row = scores + t * n_pos;
        const int visible = pos + static_cast<int>(t) + 1;
        // The exact band (at most R + T positions before the query): scores
        // against the exact keys (the exact values' share follows below).
        if (mixed) {
          const float* q = s.q.data() + t * c.q_dim() + h * hd;
          for (int p = std::max(from, s.key_from[t]); p < visible; ++p) {
            const float* k = s.k_exact.data() + static_cast<int64_t>(p - from) * kv_dim + kvh * hd;
            float dot = 0.0f;
            for (int i = 0; i < hd; ++i) dot += q[i] * k[i];
            row[p] = dot * attn_scale;
          }
        }
        softmax(row, visible);
        // Zeros up to the positions its row block's P·V reads.
        std::fill(row + visible, row + pos + std::min<int64_t>(n_tokens, (t / kAttnRowBlock + 1) * kAttnRowBlock),
                  0.0f);
      }
      // P fake-quantized (all of the head's rows at once: the median scale reads
      // every row's maximum); row t has pos + t + 1 visible positions.
      if (prob_quant_) prob_quant_->quantize_causal_rows(scores, n_tokens, n_pos, pos + 1);
      // The exact values' share of each row, moved from P to attn_exact.
      for (int64_t t = 0; mixed && t < n_tokens; ++t) {
        float* row = scores + t * n_pos;
        const int visible = pos + static_cast<int>(t) + 1;
        float* out = attn_exact + t * hd;
        std::fill(out, out + hd, 0.0f);
        for (int p = std::max(from, s.value_from[t]); p < visible; ++p) {
          const float* v = s.v_exact.data() + static_cast<int64_t>(p - from) * kv_dim + kvh * hd;
          for (int i = 0; i < hd; ++i) out[i] += row[p] * v[i];
          row[p] = 0.0f;
        }
      }
      // attn_h[n, hd] = P[n, n_pos] · v_kvh[n_pos, hd]  (+ the exact values' share),
      // per row block over the positions it sees.
      for (int r0 = 0; r0 < n_tokens; r0 += kAttnRowBlock) {
        const int rows = std::min(kAttnRowBlock, n_tokens - r0), seen = pos + r0 + rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, seen, 1.0f,
                    scores + static_cast<int64_t>(r0) * n_pos, n_pos, values + kvh * hd, kv_dim, 0.0f,
                    s.attn.data() + static_cast<int64_t>(r0) * c.q_dim() + h * hd, c.q_dim());
      }
      if (mixed) {
        for (int64_t t = 0; t < n_tokens; ++t) {
          float* out = s.attn.data() + t * c.q_dim() + h * hd;
          const float* exact = attn_exact + t * hd;
          for (int i = 0; i < hd; ++i) out[i] += exact[i];
        }
      }
    }
  });
  // Rotated values: P (V R) Rᵀ = P V.
  if (layout.values_rotated) cache.unrotate_heads(s.attn.data(), static_cast<int64_t>(n_tokens) * c.n_heads);
  return Status::ok_status();
}

// One query token over positions [0, n_pos): the heads a thread takes are cut into
// runs that share a KV head (grouped-query attention: heads h of one run have
// h / group equal), and each run is two products,
//   S[m, n_pos] = q[h..h+m, hd] · k_kvh[n_pos, hd]ᵀ / sqrt(hd),  softmax per row,
//   attn[h..h+m, hd] = S · v_kvh[n_pos, hd],
// so each thread reads a KV head's keys and values once per run, not once per head,
// and calls sgemm 2 × (runs) times instead of 2 × (heads) (TinyLlama-1.1B: 4 runs
// of 8 heads on 2 threads, against 32 single-row products that each paid sgemm's
// call overhead). Each score and output is the same dot product over hd or n_pos
// as the per-head path computes, in the BLAS kernel's order.
void DecoderBlock::decode_attention(int n_pos, const float* keys, const float* values, BlockScratch& s,
                                    ThreadPool& pool) const {
  const ModelConfig& c = config_;
  const int hd = c.head_dim, kv_dim = c.kv_dim(), group = c.n_heads / c.n_kv_heads;
  const float attn_scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const size_t score_rows = static_cast<size_t>(group) * n_pos;  // [group, n_pos] per thread
  if (s.scores.size() < pool.size() * score_rows) s.scores.resize(pool.size() * score_rows);
  const SingleThreadedBlas one_thread_blas;
  pool.parallel_for(c.n_heads, [&](int64_t h0, int64_t h1, int index) {
    float* scores = s.scores.data() + index * score_rows;
    for (int h = static_cast<int>(h0); h < h1;) {
      const int kvh = h / group;
      const int m = std::min(static_cast<int>(h1), (kvh + 1) * group) - h;  // heads of this run
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n_pos, hd, attn_scale, s.q.data() + h * hd, hd,
                  keys + kvh * hd, kv_dim, 0.0f, scores, n_pos);
      for (int i = 0; i < m; ++i) softmax(scores + static_cast<int64_t>(i) * n_pos, n_pos);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, n_pos, 1.0f, scores, n_pos, values + kvh * hd,
                  kv_dim, 0.0f, s.attn.data() + h * hd, hd);
      h += m;
    }
  });
}

Status DecoderBlock::forward(float* x, int n_tokens, int pos, KvCache& cache, int cache_layer, BlockScratch& s,
                             ThreadPool& pool, ActivationObserver* observer) const {
  const ModelConfig& c = config_;
  if (n_tokens <= 0) return make_error("layers.{}: no tokens", index_);
  if (pos < 0 || pos + n_tokens > cache.capacity()) {
    return make_error("layers.{}: positions [{}, {}) exceed the KV cache capacity {}", index_, pos, pos + n_tokens,
                      cache.capacity());
  }
  const int64_t n = n_tokens;
  const int dim = c.dim;
  s.resize(c, n, pos + n);

  auto run_linear = [&](size_t k, const float* in, float* out) {
    const Linear& lin = *linears_[k];
    if (observer != nullptr) observer->observe(names_[k], in, n, lin.in_features());
    lin.forward(in, n, out, pool);
  };
  // Linears that read the same input: decoding one token with a group the
  // block formed when its layers were set (shared_inputs_), one GEMV pass
  // (PackedLinear::gemv_shared_input); else one after the other.
  // A prompt through BF16-product layers (the calibration forward) rounds the input once
  // for the group (bf16_shared_inputs_, Bf16Linear::forward_shared_input).
  auto run_shared_input = [&](size_t group, std::initializer_list<size_t> ks, const float* in,
                              std::initializer_list<float*> outs) {
    const std::vector<const PackedLinear*>& shared = shared_inputs_[group];
    if (n == 1 && observer == nullptr && !shared.empty()) {
      PackedLinear::gemv_shared_input(shared, in, std::span(outs.begin(), outs.size()), pool);
      return;
    }
    const std::vector<const Bf16Linear*>& bf16 = bf16_shared_inputs_[group];
    if (!bf16.empty()) {
      if (observer != nullptr) {
        for (size_t k : ks) observer->observe(names_[k], in, n, linears_[k]->in_features());
      }
      Bf16Linear::forward_shared_input(bf16, in, n, std::span(outs.begin(), outs.size()), pool);
      return;
    }
    for (size_t i = 0; i < ks.size(); ++i) run_linear(ks.begin()[i], in, outs.begin()[i]);
  };
  // x += proj, [n, dim]: split over the pool for prompts (2048 × 576 is 1.2 M adds,
  // twice a layer; serial, they left the other core idle).
  auto add_residual = [&](const float* proj) {
    auto add = [&](int64_t b, int64_t e) {
      for (int64_t i = b * dim; i < e * dim; ++i) x[i] += proj[i];
    };
    if (n < 64) {
      add(0, n);
    } else {
      pool.parallel_for(n, [&](int64_t b, int64_t e, int) { add(b, e); });
    }
  };
  auto norm_rows = [&](const std::vector<float>& w, const std::vector<float>& bias) {
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        float* out = s.xb.data() + t * dim;
        rms_norm(x + t * dim, w.data(), dim, c.norm_eps, out);
        if (!bias.empty()) {
          for (int j = 0; j < dim; ++j) out[j] += bias[j];
        }
      }
    });
  };

  // Attention block.
  norm_rows(attn_norm_, attn_norm_bias_);
  run_shared_input(0, {kQ, kK, kV}, s.xb.data(), {s.q.data(), s.k.data(), s.v.data()});
  const KvCacheLayout layout = cache.layout();
  pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      const int p = pos + static_cast<int>(t);
      float* key = layout.keys_before_rope ? nullptr : s.k.data() + t * c.kv_dim();
      apply_rope_qk(s.q.data() + t * c.q_dim(), c.n_heads, key, c.n_kv_heads, c.head_dim, p, c.rope_layout,
                    rope_inv_freq_);
    }
  });
  LB_RETURN_IF_ERROR(attention(n_tokens, pos, cache, cache_layer, layout, s, pool));
  run_linear(kO, s.attn.data(), s.proj.data());
  add_residual(s.proj.data());

  // MLP block: down(silu(gate(x)) * up(x)).
  norm_rows(ffn_norm_, ffn_norm_bias_);
  run_shared_input(1, {kGate, kUp}, s.xb.data(), {s.gate.data(), s.up.data()});
  pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      float* gate = s.gate.data() + t * c.ffn_dim;
      const float* up = s.up.data() + t * c.ffn_dim;
      if (fixed_order_) {
        fixed_order_swiglu(gate, up, c.ffn_dim);
      } else {
        swiglu(gate, up, c.ffn_dim);
      }
    }
  });
  if (observer != nullptr && !observer->needs_block_output()) {
    observer->observe(names_[kDown], s.gate.data(), n, linears_[kDown]->in_features());
    return Status::ok_status();  // the caller reads only the linear inputs
  }
  run_linear(kDown, s.gate.data(), s.proj.data());
  add_residual(s.proj.data());
  return Status::ok_status();
}

}  // namespace lowbit
