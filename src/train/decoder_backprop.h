// The language-model loss of the Llama decoder on one token window and its
// gradient with respect to LoRA adapters (train/lora_adapters.h), for
// restorative LoRA (pipeline/restorative_lora.h). Base weights are frozen.
//
// Forward, per window of T tokens (the arithmetic of model/llama_model.h in FP32,
// every product through sgemm, norms' sums in double):
//   x = embedding[tokens]                                   [T, dim]
//   per layer: n = rms_norm(x) · w (+ b); q, k, v = LoRA linears of n; RoPE(q, k);
//     o = causal softmax(q kᵀ / sqrt(hd)) v per head (grouped-query);
//     x += o_proj(o); n = rms_norm(x) · w (+ b); x += down(silu(gate(n)) · up(n))
//   logits = rms_norm(x) · w · headᵀ                        [T, vocab]
//   loss = mean over t < T - 1 of -log softmax(logits_t)[tokens[t + 1]]
// Backward, in reverse, keeping every activation of the forward (about
// T (11 dim + 4 ffn + heads T) floats per layer):
//   linear  dx = dy W + s (dy B) A,  dB += s dyᵀ (x Aᵀ),  dA += s (dy B)ᵀ x
//   RMSNorm dx = r (g - x r² (g · x) / n), g = dn · w, r = 1 / rms(x)
//   RoPE    dq = R(-pos) dq' (the rotation's transpose)
//   softmax dS = P ⊙ (dP - rowsum(P ⊙ dP))
//   SwiGLU  dg = dh · u · σ(g)(1 + g(1 - σ(g))),  du = dh · silu(g)
// Tested against central differences of the loss (tests/test_lora_backprop.cpp).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "model/config.h"
#include "model/weights.h"
#include "train/lora_adapters.h"

namespace lowbit {

// The mean next-token loss (nats) of tokens[0..T) under base + lora; T >= 2, every
// token < vocab. When `grads` is not null (shaped as lora: zero_lora_like), the
// loss's gradient is added to it.
Expected<double> lora_window_loss(const ModelConfig& c, const ModelWeights& base, const LoraAdapters& lora,
                                  const int32_t* tokens, int T, LoraAdapters* grads);

}  // namespace lowbit
