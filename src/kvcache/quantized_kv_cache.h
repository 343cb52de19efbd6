// The KV cache of a KvSpec (kv_spec.h) behind the model's KvCache seam
// (model/kv_cache.h): per layer, a KvStream for keys and one for values, each
// with its KvTensorCodec. Writes first rotate every head's vector (-rot), or the
// concatenated vectors of each group of G KV heads (-rotgG), by the orthonormal
// Hadamard transform x ← x·H/sqrt(n) (kernels/hadamard.h), and take keys before
// RoPE under -prerope. Reads return what the block expects (KvCacheLayout):
//   -rot     keys stay rotated (the block rotates queries) unless they are
//            pre-RoPE (RoPE does not commute with H: un-rotated here, x·Hᵀ);
//            values stay rotated (the block un-rotates the attention output)
//   -rotgG   keys and values are un-rotated here (x·Hᵀ): a query head meets one
//            KV head, not the group, so no query rotation matches
//   -reorder keys are permuted before the rotation (kv_channel_order.h), and
//            un-rotated and un-permuted here under -rot as under -rotgG
// One-token attention (attend_decode) reads the codes in place in the layers
// kv_fused_attention.h covers, unless the cache is built with
// KvAttentionMode::kMaterialize; the choice is made per layer at creation.
#pragma once

#include <memory>
#include <vector>

#include "core/status.h"
#include "kvcache/kv_fused_attention.h"
#include "kvcache/kv_spec.h"
#include "kvcache/kv_stream.h"
#include "kvcache/kv_tensor_codec.h"
#include "model/kv_cache.h"

namespace lowbit {

class QuantizedKvCache : public KvCache {
 public:
  static Expected<std::unique_ptr<QuantizedKvCache>> create(const KvSpec& spec, const KvCacheShape& shape,
                                                             KvAttentionMode attention = KvAttentionMode::kFused);

  int capacity() const override { return shape_.capacity; }
  Status write(int layer, int pos, int n_tokens, const float* k, const float* v) override;
  void read(int layer, int n_pos, float* k_out, float* v_out) const override;
  void read_rows(int layer, int begin, int end, float* k_out, float* v_out) const override;
  KvCacheLayout layout() const override;
  int fp_from(int layer, bool keys, int query_pos) const override;
  void rotate_heads(float* x, int64_t n_vectors) const override;
  void unrotate_heads(float* x, int64_t n_vectors) const override;
  bool attend_decode(int layer, int n_pos, const float* q, int n_heads, float scale, float* out,
                     ThreadPool& pool) override;
  double bytes_per_token() const override;
  uint64_t allocated_bytes() const override;

  const KvSpec& spec() const { return spec_; }
  const KvTensorCodec& codec(int layer, bool keys) const { return *codecs_[2 * layer + (keys ? 0 : 1)]; }
  // The rows of a layer's keys or values as stored (rotated under -rot, before
  // RoPE under -prerope), decoded: out [n_pos, kv_dim].
  void read_stored(int layer, bool keys, int n_pos, float* out) const;
  // Whether attend_decode reads this layer in place.
  bool fused_layer(int layer) const { return fused_[layer]; }
  // The kernels attend_decode runs (tests force the reference).
  void set_fused_kernels(const FusedAttentionKernels& kernels) { fused_kernels_ = &kernels; }

 private:
  QuantizedKvCache() = default;

  KvSpec spec_;
  KvCacheShape shape_;
  std::vector<std::unique_ptr<KvTensorCodec>> codecs_;  // [n_layers * 2]: keys, values
  std::vector<KvStream> streams_;                       // [n_layers * 2]
  std::vector<float> rotated_;                          // [2, n_tokens, kv_dim] staging under -rot
  std::vector<bool> fused_;                             // [n_layers] attend_decode reads in place
  const FusedAttentionKernels* fused_kernels_ = nullptr;
  FusedAttentionScratch fused_scratch_;
  // Elements one Hadamard transform covers: G·head_dim.
  int rotation_size() const { return spec_.rotate_group * shape_.head_dim; }
  bool grouped_rotation() const { return spec_.rotate && spec_.rotate_group > 1; }
  // Keys read back in the rotated basis of each head (the block rotates the queries).
  bool keys_rotated_on_read() const {
    return spec_.rotate && !grouped_rotation() && !spec_.pre_rope && !spec_.reorder_keys;
  }
};

// Outliers kept per row of `width` elements for -sparseP: ceil(P% of width).
int kv_sparse_count(double percent, int width);

// Checks a spec against a model's shape (layer count, group sizes, a Hadamard
// order for -rot / -rotgG, NUQ codebooks) without allocating the cache.
Status check_kv_spec(const KvSpec& spec, const KvCacheShape& shape);

// Caches for the spec: the plain FP32 cache when spec.is_fp32(), else QuantizedKvCache.
// `attention` says how one-token attention reads it (kv_fused_attention.h).
KvCacheFactory make_kv_cache_factory(KvSpec spec, KvAttentionMode attention = KvAttentionMode::kFused);

}  // namespace lowbit
