// The KV-cache seam: attention writes each new position's keys and values through
// this interface and reads them back, so quantized storage (src/kvcache) can
// replace FP32 storage without touching the forward pass.
//
// A cache may ask for keys before RoPE (KVQuant's pre-RoPE quantization: the
// block applies RoPE to what it reads back) and may hold keys and values rotated
// per head by an orthogonal R (RotateKV): then the block multiplies each query
// head by R, since (qR)·(kR) = q·k, and each head of the attention output by Rᵀ,
// since Σ p_j (v_j R) Rᵀ = Σ p_j v_j. The FP32 cache does neither.
//
// A cache may keep the most recent positions in FP32 (a residual window, or a
// block of tokens not yet coded). Decoding one token at a time, a query then
// reads its own recent positions exactly; in a batched pass every query would
// read the state after the whole batch was written. So that a batch (prefill,
// perplexity) gives each query what it would have read decoding token by token,
// the cache tells from which position a query at position t still sees FP32
// (fp_from) and the block uses the exact rows there.
//
// A cache may also attend for one query token itself (attend_decode), reading
// its storage in place instead of returning FP32 rows; it decides per layer,
// once, whether it does, and the block falls back to read() where it does not.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"

namespace lowbit {

// What a cache is built for.
struct KvCacheShape {
  int n_layers = 0;
  int capacity = 0;  // positions per layer
  int n_kv_heads = 0;
  int head_dim = 0;
  int kv_dim() const { return static_cast<int>(int64_t{n_kv_heads} * head_dim); }
};

// How a cache wants keys written and what its reads return.
struct KvCacheLayout {
  bool keys_before_rope = false;  // write() takes keys before RoPE; read() returns them before RoPE
  bool keys_rotated = false;      // read() returns every key head times R: queries must be rotated
  bool values_rotated = false;    // read() returns every value head times R: outputs must be un-rotated
  bool recent_fp = false;         // recent positions stay FP32 for a while: see fp_from()
};

class KvCache {
 public:
  virtual ~KvCache() = default;
  virtual int capacity() const = 0;  // positions per layer
  // Stores positions [pos, pos + n_tokens) of a layer. k, v: [n_tokens, kv_dim]
  // (keys after RoPE unless layout().keys_before_rope). Errors name a write the
  // storage cannot take (a gap, or rewriting positions already quantized).
  virtual Status write(int layer, int pos, int n_tokens, const float* k, const float* v) = 0;
  // Reads positions [0, n_pos) of a layer as FP32 into k_out, v_out: [n_pos, kv_dim].
  virtual void read(int layer, int n_pos, float* k_out, float* v_out) const = 0;
  // Direct FP32 views when the storage is FP32 (no copy on the hot path); null otherwise.
  virtual const float* fp32_keys(int layer) const { return nullptr; }
  virtual const float* fp32_values(int layer) const { return nullptr; }
  // Positions [begin, end) of a layer as read() returns them: [end - begin, kv_dim].
  virtual void read_rows(int layer, int begin, int end, float* k_out, float* v_out) const = 0;
  virtual KvCacheLayout layout() const { return {}; }
  // Decoding token by token, the first position whose keys (keys = true) or
  // values a query at `query_pos` reads back exactly as written (positions before
  // it read back coded, except FP32 sinks, which read back exactly anyway).
  // Called only when layout().recent_fp.
  virtual int fp_from(int layer, bool keys, int query_pos) const { return query_pos + 1; }
  // x: [n_vectors, head_dim] in place: x ← x R (rotate_heads), x ← x Rᵀ
  // (unrotate_heads). Called only when layout() says the cache rotates.
  virtual void rotate_heads(float* x, int64_t n_vectors) const {}
  virtual void unrotate_heads(float* x, int64_t n_vectors) const {}
  // Attention of the one query token at position n_pos - 1 (written already)
  // over positions [0, n_pos) of a layer, straight from storage:
  //   out_h = Σ_j softmax_j(scale · q_h · k_j) v_j,  KV head of h = h / (n_heads / n_kv_heads)
  // q: [n_heads, head_dim] after RoPE, in the space of the keys as written (the
  // cache serves no layer whose layout asks for rotation or RoPE after reading);
  // out: [n_heads, head_dim]. Returns false, touching nothing, when this layer
  // takes the read() path.
  virtual bool attend_decode(int layer, int n_pos, const float* q, int n_heads, float scale, float* out,
                             ThreadPool& pool) {
    return false;
  }
  // Bytes stored per position over all layers, keys and values, scales, zero
  // points and side tables included, once a position is in its final storage
  // (FP32 sink tokens and the FP32 residual window are a fixed cost, counted in
  // allocated_bytes only).
  virtual double bytes_per_token() const = 0;
  // Bytes of storage this cache holds for its capacity, everything included.
  virtual uint64_t allocated_bytes() const = 0;
};

// Builds a cache for a shape; errors name what in the cache's configuration does
// not fit the model (e.g. a group size that does not divide head_dim).
using KvCacheFactory = std::function<Expected<std::unique_ptr<KvCache>>(const KvCacheShape&)>;

class Fp32KvCache : public KvCache {
 public:
  Fp32KvCache(int n_layers, int capacity, int kv_dim);
  int capacity() const override { return capacity_; }
  Status write(int layer, int pos, int n_tokens, const float* k, const float* v) override;
  void read(int layer, int n_pos, float* k_out, float* v_out) const override;
  void read_rows(int layer, int begin, int end, float* k_out, float* v_out) const override;
  const float* fp32_keys(int layer) const override { return keys_[layer].data(); }
  const float* fp32_values(int layer) const override { return values_[layer].data(); }
  double bytes_per_token() const override;
  uint64_t allocated_bytes() const override;

 private:
  int n_layers_;
  int capacity_;
  int kv_dim_;
  std::vector<std::vector<float>> keys_;    // [n_layers][capacity, kv_dim]
  std::vector<std::vector<float>> values_;  // [n_layers][capacity, kv_dim]
};

}  // namespace lowbit
