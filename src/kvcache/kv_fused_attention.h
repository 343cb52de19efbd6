// Decode attention that reads a quantized KV cache in place: one query token
// (n_heads query heads, GQA groups of n_heads / n_kv_heads heads per KV head)
// against the positions [0, n_pos) of one layer, without decoding the history
// into an FP32 [n_pos, kv_dim] buffer as KvCache::read() does.
//
// Per KV head and its group of query heads (g = 0..group-1), with k_j, v_j the
// dequantized key and value of position j (x = code · s + z per scale group):
//   s_gj  = scale · q_g · k_j          scale = 1 / sqrt(head_dim)
//   p_g   = softmax_j(s_g)             (max subtracted, FP32)
//   out_g = Σ_j p_gj v_j
// Codes are dequantized in registers, a group of codes once for all query
// heads of the GQA group (the decoded key or value is reused `group` times):
//   per-token codes (T = 1): k_j = c_j · s + z over G elements of a row
//   per-channel keys (KIVI, T tokens per unit): channel c of the unit has one
//     (s_c, z_c), so s_gj = scale · (Σ_c (q_gc s_c) c_cj + Σ_c q_gc z_c): the
//     products q_gc s_c and the sum Σ q_gc z_c are formed once per unit
// Sinks and the residual window are FP32 rows and are read as they are. Only
// the scores ([group, n_pos] per KV head) and the outputs are written.
//
// What the fused path reads (fused_attention_blocker says why a layer is not
// covered and keeps the read() path): integer codes of 2–8 bits (FP16 scales
// and zero points), keys per token or per channel, values per token, FP32 sinks
// and residual window; not NUQ/FP8/FP4 codebooks, sparse outliers, pre-RoPE keys
// (RoPE after decode) or Hadamard rotations, and not tensors stored in FP32.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kernels/cpu_features.h"
#include "kvcache/kv_spec.h"
#include "kvcache/kv_stream.h"

namespace lowbit {

// How one-token attention reads a quantized cache (--kv-attention).
enum class KvAttentionMode {
  kFused,        // read the codes in place where the layer's storage allows it (default)
  kMaterialize,  // always decode [n_pos, kv_dim] to FP32 through KvCache::read(), then attend
};

// "fused" / "materialize".
const char* kv_attention_mode_name(KvAttentionMode mode);
Expected<KvAttentionMode> parse_kv_attention_mode(const std::string& name);

// Empty when the fused path reads layer `layer` of a spec; else the reason it
// does not (e.g. "NUQ codebook keys").
std::string fused_attention_blocker(const KvSpec& spec, int layer);

// One line per run of layers for --verbose: which path one-token attention takes
// in each layer under `mode`, and why a layer is not fused.
std::string describe_decode_attention(const KvSpec& spec, int n_layers, KvAttentionMode mode);

// Where the codes of one tensor's unit are (kv_tensor_codec.h): a unit of T rows
// is [code_bytes] of LSB-first codes in group order, then FP16 scales [n_groups],
// then FP16 zero points [n_groups].
struct KvCodeLayout {
  int bits = 0;
  int width = 0;            // kv_dim
  int head_dim = 0;
  int group = 0;            // per token: elements per scale group; per channel: T
  int tokens_per_unit = 1;  // T
  int n_groups = 0;         // per unit
  int64_t code_bytes = 0;
  int64_t unit_bytes = 0;
};

// The kernels of the fused path, one table per ISA. In all of them q: [n_q,
// head_dim] (the GQA group's query heads), scores / p: [n_q] rows of stride ld,
// out: [n_q, head_dim] accumulated into (+=), kvh the KV head.
struct FusedAttentionKernels {
  const char* name;
  // scores[g, j] = scale · q_g · k_j for n_rows per-token-coded rows (T = 1) from `units`.
  void (*key_scores_rows)(const KvCodeLayout& l, const uint8_t* units, int64_t n_rows, int kvh, const float* q,
                          int n_q, float scale, float* scores, int64_t ld);
  // The same for n_units units of T per-channel-coded rows (KIVI keys): n_units · T scores per head.
  void (*key_scores_blocks)(const KvCodeLayout& l, const uint8_t* units, int64_t n_units, int kvh, const float* q,
                            int n_q, float scale, float* scores, int64_t ld);
  // out[g] += Σ_j p[g, j] v_j over n_rows per-token-coded rows.
  void (*value_rows)(const KvCodeLayout& l, const uint8_t* units, int64_t n_rows, int kvh, const float* p, int n_q,
                     int64_t ld, float* out);
  // FP32 rows (sinks, residual window): rows [n_rows, stride], the head's slice at rows + kvh · head_dim.
  void (*key_scores_f32)(const float* rows, int64_t n_rows, int64_t stride, int head_dim, const float* q, int n_q,
                         float scale, float* scores, int64_t ld);
  void (*value_f32)(const float* rows, int64_t n_rows, int64_t stride, int head_dim, const float* p, int n_q,
                    int64_t ld, float* out);
  // Softmax of one score row in place: the model's own (kernels/exp_rows.h) at the same level.
  void (*softmax)(float* x, int64_t n);
};

// The scalar reference: each element dequantized exactly as KvTensorCodec::decode
// does (c · s, then + z), dots and sums in order.
const FusedAttentionKernels& reference_fused_attention_kernels();
// AVX2 + FMA + F16C (kv_fused_attention_avx2.cpp); call only where supported.
const FusedAttentionKernels& avx2_fused_attention_kernels();
// AVX-512 F/BW/VL (kv_fused_attention_avx512.cpp); call only where supported.
const FusedAttentionKernels& avx512_fused_attention_kernels();
// The kernels that run for `isa` (generic: the reference).
const FusedAttentionKernels& fused_attention_kernels(Isa isa);

KvCodeLayout code_layout_of(const KvTensorCodec& codec, int head_dim);

// Work buffers, one per thread.
struct FusedAttentionScratch {
  std::vector<std::vector<float>> scores;  // [threads][group, n_pos]
};

struct FusedDecodeQuery {
  const float* q = nullptr;  // [n_heads, head_dim] after RoPE, for position n_pos - 1
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int n_pos = 0;             // positions read: all the streams hold (n_pos == length())
  float scale = 0.0f;        // 1 / sqrt(head_dim)
  float* out = nullptr;      // [n_heads, head_dim]
};

// Attention of one token over the keys and values streams of a layer, split
// over KV heads on the pool. The streams must be covered by the fused path
// (fused_attention_blocker) and hold exactly n_pos positions.
void fused_decode_attention(const KvStream& keys, const KvStream& values, const FusedDecodeQuery& query,
                            const FusedAttentionKernels& kernels, FusedAttentionScratch& scratch, ThreadPool& pool);

}  // namespace lowbit
