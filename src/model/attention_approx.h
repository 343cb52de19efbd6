// Causal grouped-query attention with L-Mul or FP8 E4M3 products and FP32 sums
// (kernels/approx_gemm.h), for `ppl --arith lmul|fp8` (model/product_arithmetic.h):
//   scores = (q̃_h ∘ k̃_kvh)·scale   (FP32 sums; scale is one FP32 multiply of each sum)
//   P      = softmax(scores) over the visible positions (FP32)
//   out_h  = P̃ ∘ ṽ_kvh              (FP32 sums)
// (x̃: x rounded to the product's operand format) per block of kAttnRowBlock query
// rows, against only the positions the block sees, as attention_bf16 does.
#pragma once

#include "core/thread_pool.h"
#include "kernels/approx_gemm.h"
#include "kernels/cpu_features.h"
#include "model/config.h"

namespace lowbit {

// q: [n_tokens, q_dim] after RoPE, queries at positions [pos, pos + n_tokens);
// keys, values: [pos + n_tokens, kv_dim] (keys after RoPE); out: [n_tokens, q_dim].
void attention_approx(const ModelConfig& config, const float* q, int n_tokens, int pos, const float* keys,
                      const float* values, float* out, ThreadPool& pool, const ApproxArith& arith, Isa isa);

}  // namespace lowbit
