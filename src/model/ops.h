// Scalar FP32 building blocks of the Llama forward pass. Each works on one row
// so callers can parallelise over tokens or heads.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace lowbit {

// out[i] = x[i] / sqrt(mean(x²) + eps) * weight[i], over n elements; sum in double.
void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out);

// Inverse frequencies [head_dim/2]: theta^(-2i/head_dim), with Llama-3 scaling and
// the optional per-frequency divisors of GGUF rope_freqs.
std::vector<double> rope_inverse_frequencies(const ModelConfig& config,
                                             const std::vector<float>& freq_factors);

// Rotates each head of vec [n_heads, head_dim] in place for position `pos`.
void apply_rope(float* vec, int n_heads, int head_dim, int pos, RopeLayout layout,
                const std::vector<double>& inv_freq);
// The same for a query [n_heads, head_dim] and, when `key` is not null, a key
// [n_kv_heads, head_dim] of one position: each angle's sine and cosine are computed
// once for both (the same values as two apply_rope calls, so the same bits).
void apply_rope_qk(float* query, int n_heads, float* key, int n_kv_heads, int head_dim, int pos, RopeLayout layout,
                   const std::vector<double>& inv_freq);

// In-place numerically stable softmax over n elements.
void softmax(float* x, int64_t n);

// gate[i] = silu(gate[i]) * up[i]  (SwiGLU), silu(g) = g / (1 + e^-g).
void swiglu(float* gate, const float* up, int64_t n);

}  // namespace lowbit
