// Causal grouped-query attention with BF16 products and FP32 sums (kernels/gemm_bf16.h):
// the calibration forward's attention under --calib-arith bf16 (pipeline/calibration.h).
//   scores = bf16(q_h) · bf16(k_kvh)ᵀ · scale   (FP32 sums)
//   P      = softmax(scores) over the visible positions (FP32)
//   out_h  = bf16(P) · bf16(v_kvh)              (FP32 sums)
// per block of 64 query rows, against only the positions the block sees. The FP32
// path (DecoderBlock::attention) is the reference; the difference is the operands'
// BF16 rounding (2^-9 relative each) and the FP32 sums' order.
#pragma once

#include "core/thread_pool.h"
#include "kernels/cpu_features.h"
#include "model/attention_blocks.h"
#include "model/config.h"

namespace lowbit {

// q: [n_tokens, q_dim] after RoPE, queries at positions [pos, pos + n_tokens);
// keys, values: [pos + n_tokens, kv_dim] (keys after RoPE); out: [n_tokens, q_dim].
void attention_bf16(const ModelConfig& config, const float* q, int n_tokens, int pos, const float* keys,
                    const float* values, float* out, ThreadPool& pool, Isa isa);

}  // namespace lowbit
