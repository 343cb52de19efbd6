// The KV-cache seam: attention writes each new position's keys and values through
// this interface and reads them back, so quantized storage can replace FP32
// storage without touching the forward pass.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace lowbit {

class KvCache {
 public:
  virtual ~KvCache() = default;
  virtual int capacity() const = 0;  // positions per layer
  // Stores positions [pos, pos + n_tokens) of a layer. k, v: [n_tokens, kv_dim]
  // (keys after RoPE).
  virtual void write(int layer, int pos, int n_tokens, const float* k, const float* v) = 0;
  // Reads positions [0, n_pos) of a layer as FP32 into k_out, v_out: [n_pos, kv_dim].
  virtual void read(int layer, int n_pos, float* k_out, float* v_out) const = 0;
  // Direct FP32 views when the storage is FP32 (no copy on the hot path); null otherwise.
  virtual const float* fp32_keys(int layer) const { return nullptr; }
  virtual const float* fp32_values(int layer) const { return nullptr; }
  // Bytes stored per position over all layers, keys and values, side tables included.
  virtual uint64_t bytes_per_token() const = 0;
};

class Fp32KvCache : public KvCache {
 public:
  Fp32KvCache(int n_layers, int capacity, int kv_dim);
  int capacity() const override { return capacity_; }
  void write(int layer, int pos, int n_tokens, const float* k, const float* v) override;
  void read(int layer, int n_pos, float* k_out, float* v_out) const override;
  const float* fp32_keys(int layer) const override { return keys_[layer].data(); }
  const float* fp32_values(int layer) const override { return values_[layer].data(); }
  uint64_t bytes_per_token() const override;

 private:
  int n_layers_;
  int capacity_;
  int kv_dim_;
  std::vector<std::vector<float>> keys_;    // [n_layers][capacity, kv_dim]
  std::vector<std::vector<float>> values_;  // [n_layers][capacity, kv_dim]
};

}  // namespace lowbit
