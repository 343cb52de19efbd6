#include "kvcache/quantized_kv_cache.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu_features.h"
#include "kernels/hadamard.h"

namespace lowbit {
namespace {

const std::vector<float>& codebook_of(const KvSpec& spec, int layer, bool keys) {
  static const std::vector<float> kNone;
  if (layer >= static_cast<int>(spec.codebooks.layers.size())) return kNone;
  return keys ? spec.codebooks.layers[layer].key : spec.codebooks.layers[layer].value;
}

Expected<std::vector<std::unique_ptr<KvTensorCodec>>> make_codecs(const KvSpec& spec, const KvCacheShape& shape) {
  if (spec.layers.size() != 1 && static_cast<int>(spec.layers.size()) != shape.n_layers) {
    return make_error("kv spec '{}': {} per-layer entries for a model of {} layers", spec.name, spec.layers.size(),
                      shape.n_layers);
  }
  if (spec.rotate) {
    const int g = spec.rotate_group;
    if (g < 1 || shape.n_kv_heads % g != 0) {
      return make_error("kv spec '{}': a rotation group of {} KV heads does not divide the model's {} KV heads",
                        spec.name, g, shape.n_kv_heads);
    }
    if (!hadamard_supported(static_cast<int64_t>(g) * shape.head_dim)) {
      return make_error("kv spec '{}': no Hadamard rotation of {} KV head(s) of {}: {}", spec.name, g,
                        shape.head_dim, describe_hadamard_order(static_cast<int64_t>(g) * shape.head_dim));
    }
  }
  const int width = shape.kv_dim();
  if (spec.reorder_keys) {
    if (spec.key_order.empty()) {
      return make_error("kv spec '{}': -reorder needs the key channel order measured on calibration data (pass "
                        "--kv-calib, or a saved configuration to --kv)", spec.name);
    }
    if (static_cast<int>(spec.key_order.layers.size()) != shape.n_layers) {
      return make_error("kv spec '{}': key_order has {} layers for a model of {} layers", spec.name,
                        spec.key_order.layers.size(), shape.n_layers);
    }
    for (int l = 0; l < shape.n_layers; ++l) {
      LB_RETURN_IF_ERROR(check_channel_order(spec.key_order.layers[l], width,
                                             fmt::format("kv spec '{}': key_order[{}]", spec.name, l)));
    }
  }
  std::vector<std::unique_ptr<KvTensorCodec>> codecs;
  for (int l = 0; l < shape.n_layers; ++l) {
    for (bool keys : {true, false}) {
      const KvTensorSpec& t = keys ? spec.layer(l).key : spec.layer(l).value;
      const std::string what = fmt::format("kv spec '{}': layer {} {}", spec.name, l, keys ? "keys" : "values");
      LB_ASSIGN_OR_RETURN(KvTensorCodec c,
                          KvTensorCodec::create(t, width, shape.head_dim, kv_sparse_count(spec.sparse_percent, width),
                                                codebook_of(spec, l, keys), what));
      codecs.push_back(std::make_unique<KvTensorCodec>(std::move(c)));
    }
  }
  return codecs;
}

}  // namespace

int kv_sparse_count(double percent, int width) {
  if (percent <= 0.0) return 0;
  return std::min(width, static_cast<int>(std::ceil(percent * width / 100.0 - 1e-9)));
}

Status check_kv_spec(const KvSpec& spec, const KvCacheShape& shape) {
  auto codecs = make_codecs(spec, shape);
  return codecs.ok() ? Status::ok_status() : codecs.status();
}

Expected<std::unique_ptr<QuantizedKvCache>> QuantizedKvCache::create(const KvSpec& spec, const KvCacheShape& shape,
                                                                    KvAttentionMode attention) {
  if (shape.n_layers <= 0 || shape.capacity <= 0 || shape.n_kv_heads <= 0 || shape.head_dim <= 0) {
    return make_error("kv cache: bad shape ({} layers, {} positions, {} heads of {})", shape.n_layers,
                      shape.capacity, shape.n_kv_heads, shape.head_dim);
  }
  std::unique_ptr<QuantizedKvCache> cache(new QuantizedKvCache());
  cache->spec_ = spec;
  cache->shape_ = shape;
  LB_ASSIGN_OR_RETURN(cache->codecs_, make_codecs(spec, shape));
  cache->streams_.reserve(cache->codecs_.size());
  for (const auto& c : cache->codecs_) {
    // Sinks and the residual window only matter for coded tensors.
    const bool coded = c->spec().quantized();
    cache->streams_.emplace_back(*c, shape.capacity, coded ? spec.sinks : 0, coded ? spec.residual : 0);
  }
  for (int l = 0; l < shape.n_layers; ++l) {
    cache->fused_.push_back(attention == KvAttentionMode::kFused && fused_attention_blocker(spec, l).empty());
  }
  cache->fused_kernels_ = &fused_attention_kernels(active_isa());
  return cache;
}

Status QuantizedKvCache::write(int layer, int pos, int n_tokens, const float* k, const float* v) {
  if (layer < 0 || layer >= shape_.n_layers) return make_error("layer {} is outside [0, {})", layer, shape_.n_layers);
  const int64_t n = static_cast<int64_t>(n_tokens) * shape_.kv_dim();
  if (spec_.rotate) {
    rotated_.resize(static_cast<size_t>(2 * n));
    if (spec_.reorder_keys) {
      gather_channels(k, n_tokens, spec_.key_order.layers[layer], rotated_.data());
    } else {
      std::copy(k, k + n, rotated_.begin());
    }
    std::copy(v, v + n, rotated_.begin() + n);
    hadamard_rows(rotated_.data(), 2 * n / rotation_size(), rotation_size());
    k = rotated_.data();
    v = rotated_.data() + n;
  }
  LB_RETURN_IF_ERROR(streams_[2 * layer].write(pos, n_tokens, k).with_context("keys"));
  return streams_[2 * layer + 1].write(pos, n_tokens, v).with_context("values");
}

void QuantizedKvCache::read_stored(int layer, bool keys, int n_pos, float* out) const {
  streams_[2 * layer + (keys ? 0 : 1)].read(n_pos, out);
}

void QuantizedKvCache::read(int layer, int n_pos, float* k_out, float* v_out) const {
  read_rows(layer, 0, n_pos, k_out, v_out);
}

void QuantizedKvCache::read_rows(int layer, int begin, int end, float* k_out, float* v_out) const {
  streams_[2 * layer].read_rows(begin, end, k_out);
  streams_[2 * layer + 1].read_rows(begin, end, v_out);
  if (!spec_.rotate) return;
  const int64_t vectors = static_cast<int64_t>(end - begin) * shape_.kv_dim() / rotation_size();
  // Grouped rotation cannot be matched on the query side (KvCacheLayout): un-rotate
  // keys and values. Per-head rotation un-rotates only pre-RoPE keys (RoPE does not
  // commute with H) and reordered keys (a permutation across heads), which are
  // then put back in their own channel order.
  if (!keys_rotated_on_read()) hadamard_rows_transpose(k_out, vectors, rotation_size());
  if (grouped_rotation()) hadamard_rows_transpose(v_out, vectors, rotation_size());
  if (spec_.reorder_keys) {
    const std::vector<int32_t>& order = spec_.key_order.layers[layer];
    std::vector<float> row(order.size());  // [kv_dim]
    for (int t = 0; t < end - begin; ++t) {
      float* k = k_out + static_cast<int64_t>(t) * shape_.kv_dim();
      std::copy(k, k + shape_.kv_dim(), row.begin());
      scatter_channels(row.data(), 1, order, k);
    }
  }
}

int QuantizedKvCache::fp_from(int layer, bool keys, int query_pos) const {
  return streams_[2 * layer + (keys ? 0 : 1)].fp_from(query_pos);
}

KvCacheLayout QuantizedKvCache::layout() const {
  KvCacheLayout l;
  l.keys_before_rope = spec_.pre_rope;
  l.keys_rotated = keys_rotated_on_read();
  l.values_rotated = spec_.rotate && !grouped_rotation();
  for (const KvStream& s : streams_) l.recent_fp = l.recent_fp || (s.keeps_recent_fp32() && s.coded());
  return l;
}

void QuantizedKvCache::rotate_heads(float* x, int64_t n_vectors) const {
  hadamard_rows(x, n_vectors, shape_.head_dim);
}

void QuantizedKvCache::unrotate_heads(float* x, int64_t n_vectors) const {
  hadamard_rows_transpose(x, n_vectors, shape_.head_dim);
}

bool QuantizedKvCache::attend_decode(int layer, int n_pos, const float* q, int n_heads, float scale, float* out,
                                     ThreadPool& pool) {
  const KvStream& keys = streams_[2 * layer];
  const KvStream& values = streams_[2 * layer + 1];
  if (!fused_[layer] || keys.length() != n_pos || values.length() != n_pos) return false;
  FusedDecodeQuery query;
  query.q = q;
  query.n_heads = n_heads;
  query.n_kv_heads = shape_.n_kv_heads;
  query.head_dim = shape_.head_dim;
  query.n_pos = n_pos;
  query.scale = scale;
  query.out = out;
  fused_decode_attention(keys, values, query, *fused_kernels_, fused_scratch_, pool);
  return true;
}

double QuantizedKvCache::bytes_per_token() const {
  double bytes = 0.0;
  for (const auto& c : codecs_) bytes += c->bytes_per_token();
  return bytes;
}

uint64_t QuantizedKvCache::allocated_bytes() const {
  uint64_t bytes = 0;
  for (const KvStream& s : streams_) bytes += s.allocated_bytes();
  return bytes;
}

KvCacheFactory make_kv_cache_factory(KvSpec spec, KvAttentionMode attention) {
  return [spec = std::move(spec), attention](const KvCacheShape& shape) -> Expected<std::unique_ptr<KvCache>> {
    if (spec.is_fp32()) {
      return std::unique_ptr<KvCache>(std::make_unique<Fp32KvCache>(shape.n_layers, shape.capacity, shape.kv_dim()));
    }
    LB_ASSIGN_OR_RETURN(std::unique_ptr<QuantizedKvCache> cache, QuantizedKvCache::create(spec, shape, attention));
    return std::unique_ptr<KvCache>(std::move(cache));
  };
}

}  // namespace lowbit
