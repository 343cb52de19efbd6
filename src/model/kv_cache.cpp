#include "model/kv_cache.h"

#include <algorithm>

namespace lowbit {

Fp32KvCache::Fp32KvCache(int n_layers, int capacity, int kv_dim)
    : n_layers_(n_layers), capacity_(capacity), kv_dim_(kv_dim) {
  keys_.assign(n_layers, std::vector<float>(static_cast<size_t>(capacity) * kv_dim));
  values_.assign(n_layers, std::vector<float>(static_cast<size_t>(capacity) * kv_dim));
}

Status Fp32KvCache::write(int layer, int pos, int n_tokens, const float* k, const float* v) {
  const size_t offset = static_cast<size_t>(pos) * kv_dim_;
  const size_t count = static_cast<size_t>(n_tokens) * kv_dim_;
  std::copy(k, k + count, keys_[layer].begin() + offset);
  std::copy(v, v + count, values_[layer].begin() + offset);
  return Status::ok_status();
}

void Fp32KvCache::read_rows(int layer, int begin, int end, float* k_out, float* v_out) const {
  const size_t first = static_cast<size_t>(begin) * kv_dim_;
  const size_t last = static_cast<size_t>(end) * kv_dim_;
  std::copy(keys_[layer].begin() + first, keys_[layer].begin() + last, k_out);
  std::copy(values_[layer].begin() + first, values_[layer].begin() + last, v_out);
}

void Fp32KvCache::read(int layer, int n_pos, float* k_out, float* v_out) const {
  const size_t count = static_cast<size_t>(n_pos) * kv_dim_;
  std::copy(keys_[layer].begin(), keys_[layer].begin() + count, k_out);
  std::copy(values_[layer].begin(), values_[layer].begin() + count, v_out);
}

double Fp32KvCache::bytes_per_token() const {
  return static_cast<double>(n_layers_) * 2 * kv_dim_ * sizeof(float);
}

uint64_t Fp32KvCache::allocated_bytes() const {
  uint64_t bytes = 0;
  for (int l = 0; l < n_layers_; ++l) bytes += (keys_[l].size() + values_[l].size()) * sizeof(float);
  return bytes;
}

}  // namespace lowbit
