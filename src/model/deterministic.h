// The deterministic forward (`--deterministic` of ppl, generate and bench;
// docs/RUNTIME.md): logits that are bit-identical whatever the tokens per forward
// call (prompt chunking, ppl --batch), the thread count and the ISA level
// (LOWBIT_ISA), because no output element's reduction order depends on them:
//   linears (lm_head too): FixedOrderLinear, the one dot order of kernels/fixed_order.h,
//     the pool splitting output rows only; quantized weights are decoded once to
//     FP32 by the layout's scalar reference decode (packed_value), so the dot is
//     the same dequantize-then-dot at every ISA;
//   attention, prompt and single-token: attention_fixed_order (FP32 cache required);
//   softmax, SwiGLU: fixed-order sums and an exp from IEEE double operations only;
//   RMSNorm: already one row at a time in a fixed order (model/ops.h), as are RoPE
//     and the residual adds.
// What it cannot make fixed: a layer that quantizes its activations or wraps an
// online rotation (their arithmetic is the layer's), and quantized KV caches; those
// are refused with an error naming the layer or cache.
#pragma once

#include "core/status.h"
#include "kernels/cpu_features.h"
#include "model/llama_model.h"

namespace lowbit {

// Converts `model` in place. isa picks the SIMD variant of the fixed-order dot
// (each gives the same bits; the choice only changes speed). Error names the first
// layer that cannot be converted; the model is then partly converted and unusable.
Status make_deterministic(LlamaModel& model, Isa isa);

}  // namespace lowbit
