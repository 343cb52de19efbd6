// Causal grouped-query attention in a fixed order (the attention of
// `--deterministic`, model/deterministic.h): for query t (position pos + t) of
// head h, scores s[p] = fixed_order_dot(q_t,h, k_p,kvh) · 1/sqrt(head_dim) for
// p in [0, pos + t], the fixed-order softmax (kernels/fixed_order.h), and
// out[i] = Σ_p P[p] · v_p[i] summed in increasing p (separate multiply and add).
// Each output element depends on its query row and the cache alone, so a prompt in
// one call, in chunks or one token at a time gives the same bits, at any thread
// count (heads are split over the pool) and ISA level.
#pragma once

#include "core/thread_pool.h"
#include "kernels/cpu_features.h"
#include "model/config.h"

namespace lowbit {

// q [n_tokens, q_dim] after RoPE at positions [pos, pos + n_tokens); keys, values
// [pos + n_tokens, kv_dim] (keys after RoPE); out [n_tokens, q_dim].
void attention_fixed_order(const ModelConfig& config, const float* q, int n_tokens, int pos, const float* keys,
                           const float* values, float* out, ThreadPool& pool, Isa isa);

}  // namespace lowbit
