#include "kvcache/kv_fused_attention.h"

#include <algorithm>
#include <cmath>

#include "core/half.h"
#include "kernels/exp_rows.h"
#include "kvcache/kv_code_read.h"

namespace lowbit {
namespace {

// ---- the scalar reference ------------------------------------------------

// The value of element `e` of a unit: code · s, then + z, as KvTensorCodec::decode.
float dequantized(const KvCodeLayout& l, const uint8_t* unit, int64_t e, int64_t group_index) {
  const float code = static_cast<float>(read_code(unit, e * l.bits, l.bits));
  const float scaled = code * unit_scale(l, unit, group_index);
  return scaled + unit_zero(l, unit, group_index);
}

void key_scores_rows_ref(const KvCodeLayout& l, const uint8_t* units, int64_t n_rows, int kvh, const float* q, int n_q,
                         float scale, float* scores, int64_t ld) {
  const int hd = l.head_dim;
  for (int64_t j = 0; j < n_rows; ++j) {
    const uint8_t* unit = units + j * l.unit_bytes;
    for (int g = 0; g < n_q; ++g) {
      float dot = 0.0f;
      for (int i = 0; i < hd; ++i) {
        const int64_t e = static_cast<int64_t>(kvh) * hd + i;
        dot += q[g * hd + i] * dequantized(l, unit, e, e / l.group);
      }
      scores[g * ld + j] = dot * scale;
    }
  }
}

void key_scores_blocks_ref(const KvCodeLayout& l, const uint8_t* units, int64_t n_units, int kvh, const float* q,
                           int n_q, float scale, float* scores, int64_t ld) {
  const int hd = l.head_dim, T = l.tokens_per_unit;
  for (int64_t u = 0; u < n_units; ++u) {
    const uint8_t* unit = units + u * l.unit_bytes;
    for (int t = 0; t < T; ++t) {
      for (int g = 0; g < n_q; ++g) {
        float dot = 0.0f;
        for (int i = 0; i < hd; ++i) {
          const int64_t c = static_cast<int64_t>(kvh) * hd + i;  // channel: codes [width, T], one group each
          dot += q[g * hd + i] * dequantized(l, unit, c * T + t, c);
        }
        scores[g * ld + u * T + t] = dot * scale;
      }
    }
  }
}

void value_rows_ref(const KvCodeLayout& l, const uint8_t* units, int64_t n_rows, int kvh, const float* p, int n_q,
                    int64_t ld, float* out) {
  const int hd = l.head_dim;
  for (int64_t j = 0; j < n_rows; ++j) {
    const uint8_t* unit = units + j * l.unit_bytes;
    for (int i = 0; i < hd; ++i) {
      const int64_t e = static_cast<int64_t>(kvh) * hd + i;
      const float v = dequantized(l, unit, e, e / l.group);
      for (int g = 0; g < n_q; ++g) out[g * hd + i] += p[g * ld + j] * v;
    }
  }
}

void key_scores_f32_ref(const float* rows, int64_t n_rows, int64_t stride, int hd, const float* q, int n_q, float scale,
                        float* scores, int64_t ld) {
  for (int64_t j = 0; j < n_rows; ++j) {
    const float* k = rows + j * stride;
    for (int g = 0; g < n_q; ++g) {
      float dot = 0.0f;
      for (int i = 0; i < hd; ++i) dot += q[g * hd + i] * k[i];
      scores[g * ld + j] = dot * scale;
    }
  }
}

void value_f32_ref(const float* rows, int64_t n_rows, int64_t stride, int hd, const float* p, int n_q, int64_t ld,
                   float* out) {
  for (int64_t j = 0; j < n_rows; ++j) {
    const float* v = rows + j * stride;
    for (int g = 0; g < n_q; ++g) {
      for (int i = 0; i < hd; ++i) out[g * hd + i] += p[g * ld + j] * v[i];
    }
  }
}

// ---- the driver ----------------------------------------------------------

// Positions [0, n_pos) of a stream split into its three storages.
struct StreamParts {
  int sink_end;   // [0, sink_end) FP32 sinks
  int coded_end;  // [sink_end, coded_end) coded units
};

StreamParts parts_of(const KvStream& s, int n_pos) {
  const int sink_end = std::min(s.sinks(), n_pos);
  return {sink_end, std::max(sink_end, std::min(s.coded_end(), n_pos))};
}

void head_scores(const KvStream& keys, const FusedDecodeQuery& a, const FusedAttentionKernels& k, int kvh,
                 const float* q, int n_q, float* scores) {
  const int hd = a.head_dim, width = keys.codec().width();
  const StreamParts parts = parts_of(keys, a.n_pos);
  const int64_t ld = a.n_pos;
  for (int p = 0; p < parts.sink_end; ++p) {
    k.key_scores_f32(keys.sink_row(p) + kvh * hd, 1, width, hd, q, n_q, a.scale, scores + p, ld);
  }
  if (parts.coded_end > parts.sink_end) {
    const KvCodeLayout l = code_layout_of(keys.codec(), hd);
    const int64_t rows = parts.coded_end - parts.sink_end;
    if (l.tokens_per_unit == 1) {
      k.key_scores_rows(l, keys.unit(0), rows, kvh, q, n_q, a.scale, scores + parts.sink_end, ld);
    } else {
      k.key_scores_blocks(l, keys.unit(0), rows / l.tokens_per_unit, kvh, q, n_q, a.scale, scores + parts.sink_end,
                          ld);
    }
  }
  for (int p = parts.coded_end; p < a.n_pos; ++p) {
    k.key_scores_f32(keys.window_row(p) + kvh * hd, 1, width, hd, q, n_q, a.scale, scores + p, ld);
  }
}

void head_values(const KvStream& values, const FusedDecodeQuery& a, const FusedAttentionKernels& k, int kvh,
                 const float* p, int n_q, float* out) {
  const int hd = a.head_dim, width = values.codec().width();
  const StreamParts parts = parts_of(values, a.n_pos);
  const int64_t ld = a.n_pos;
  for (int j = 0; j < parts.sink_end; ++j) {
    k.value_f32(values.sink_row(j) + kvh * hd, 1, width, hd, p + j, n_q, ld, out);
  }
  if (parts.coded_end > parts.sink_end) {
    const KvCodeLayout l = code_layout_of(values.codec(), hd);
    k.value_rows(l, values.unit(0), parts.coded_end - parts.sink_end, kvh, p + parts.sink_end, n_q, ld, out);
  }
  for (int j = parts.coded_end; j < a.n_pos; ++j) {
    k.value_f32(values.window_row(j) + kvh * hd, 1, width, hd, p + j, n_q, ld, out);
  }
}

bool is_integer_code(const KvTensorSpec& t) { return t.element == KvElement::kInteger && t.bits <= 8; }

}  // namespace

const char* kv_attention_mode_name(KvAttentionMode mode) {
  return mode == KvAttentionMode::kFused ? "fused" : "materialize";
}

Expected<KvAttentionMode> parse_kv_attention_mode(const std::string& name) {
  if (name == "fused") return KvAttentionMode::kFused;
  if (name == "materialize") return KvAttentionMode::kMaterialize;
  return make_error("kv attention '{}': expected fused or materialize", name);
}

std::string fused_attention_blocker(const KvSpec& spec, int layer) {
  const KvLayerSpec& l = spec.layer(layer);
  for (const auto& [t, what] : {std::pair{&l.key, "keys"}, std::pair{&l.value, "values"}}) {
    if (!t->quantized()) return fmt::format("{} stored in FP32", what);
    if (t->element == KvElement::kCodebook) return fmt::format("NUQ codebook {}", what);
    if (t->element == KvElement::kFloat16) return fmt::format("FP16 {}", what);
    if (t->element != KvElement::kInteger) return fmt::format("FP8/FP4 {}", what);
    if (!is_integer_code(*t)) return fmt::format("{}-bit {} (FP32 scales)", t->bits, what);
  }
  if (l.value.granularity != KvGranularity::kPerToken) return "per-channel values";
  if (spec.sparse_percent > 0.0) return "sparse outliers";
  if (spec.pre_rope) return "pre-RoPE keys (RoPE after decode)";
  if (spec.rotate) return "Hadamard rotation";
  return {};
}

std::string describe_decode_attention(const KvSpec& spec, int n_layers, KvAttentionMode mode) {
  auto path_of = [&](int layer) -> std::string {
    if (spec.is_fp32()) return "FP32 cache, read in place";
    const std::string why = fused_attention_blocker(spec, layer);
    if (!why.empty()) return "materialize (" + why + ")";
    if (mode == KvAttentionMode::kMaterialize) return "materialize (--kv-attention materialize)";
    return fmt::format("fused, reads the codes in place ({} kernels)", fused_attention_kernels(active_isa()).name);
  };
  std::string text;
  for (int first = 0; first < n_layers;) {
    const std::string path = path_of(first);
    int last = first;
    while (last + 1 < n_layers && path_of(last + 1) == path) ++last;
    text += fmt::format("{}kv attention, one-token decode, layers {}-{}: {}", text.empty() ? "" : "\n", first, last,
                        path);
    first = last + 1;
  }
  return text;
}

KvCodeLayout code_layout_of(const KvTensorCodec& codec, int head_dim) {
  KvCodeLayout l;
  l.bits = codec.spec().bits;
  l.width = codec.width();
  l.head_dim = head_dim;
  l.group = codec.group_size();
  l.tokens_per_unit = codec.tokens_per_unit();
  l.n_groups = codec.groups_per_unit();
  l.code_bytes = codec.code_bytes();
  l.unit_bytes = codec.unit_bytes();
  return l;
}

const FusedAttentionKernels& reference_fused_attention_kernels() {
  static const FusedAttentionKernels k{"reference", key_scores_rows_ref, key_scores_blocks_ref, value_rows_ref,
                                       key_scores_f32_ref, value_f32_ref, exp_row_ops_generic().softmax};
  return k;
}

const FusedAttentionKernels& fused_attention_kernels(Isa isa) {
#ifdef LOWBIT_ARCH_X86
  if (isa >= Isa::kAvx512) return avx512_fused_attention_kernels();
  if (isa >= Isa::kAvx2) return avx2_fused_attention_kernels();
#endif
  return reference_fused_attention_kernels();
}

void fused_decode_attention(const KvStream& keys, const KvStream& values, const FusedDecodeQuery& a,
                            const FusedAttentionKernels& kernels, FusedAttentionScratch& scratch, ThreadPool& pool) {
  const int group = a.n_heads / a.n_kv_heads;
  const int hd = a.head_dim;
  scratch.scores.resize(pool.size());
  pool.parallel_for(a.n_kv_heads, [&](int64_t begin, int64_t end, int thread) {
    std::vector<float>& scores = scratch.scores[thread];  // [group, n_pos]
    scores.resize(static_cast<size_t>(group) * a.n_pos);
    for (int kvh = static_cast<int>(begin); kvh < end; ++kvh) {
      const float* q = a.q + static_cast<int64_t>(kvh) * group * hd;  // the group's heads are consecutive
      float* out = a.out + static_cast<int64_t>(kvh) * group * hd;
      head_scores(keys, a, kernels, kvh, q, group, scores.data());
      for (int g = 0; g < group; ++g) kernels.softmax(scores.data() + static_cast<int64_t>(g) * a.n_pos, a.n_pos);
      std::fill(out, out + static_cast<int64_t>(group) * hd, 0.0f);
      head_values(values, a, kernels, kvh, scores.data(), group, out);
    }
  });
}

}  // namespace lowbit
