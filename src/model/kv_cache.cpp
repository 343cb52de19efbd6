#include "model/kv_cache.h"

#include <algorithm>

namespace lowbit {

Fp32KvCache::Fp32KvCache(int n_layers, int capacity, int kv_dim)
    : n_layers_(n_layers), capacity_(capacity), kv_dim_(kv_dim) {
  keys_.assign(n_layers, std::vector<float>(static_cast<size_t>(capacity) * kv_dim));
  values_.assign(n_layers, std::vector<float>(static_cast<size_t>(capacity) * kv_dim));
}

void Fp32KvCache::write(int layer, int pos, int n_tokens, const float* k, const float* v) {
  const size_t offset = static_cast<size_t>(pos) * kv_dim_;
  const size_t count = static_cast<size_t>(n_tokens) * kv_dim_;
  std::copy(k, k + count, keys_[layer].begin() + offset);
  std::copy(v, v + count, values_[layer].begin() + offset);
}

void Fp32KvCache::read(int layer, int n_pos, float* k_out, float* v_out) const {
  const size_t count = static_cast<size_t>(n_pos) * kv_dim_;
  std::copy(keys_[layer].begin(), keys_[layer].begin() + count, k_out);
  std::copy(values_[layer].begin(), values_[layer].begin() + count, v_out);
}

uint64_t Fp32KvCache::bytes_per_token() const {
  return static_cast<uint64_t>(n_layers_) * 2 * kv_dim_ * sizeof(float);
}

}  // namespace lowbit
