// Random-weight models of a given shape, quantized in memory, for speed tests
// at realistic sizes without the checkpoint (`lowbit bench --shape`). Weights
// are uniform in [-a, a] with a = sqrt(3) * 0.02 (standard deviation 0.02, the
// usual Llama initialisation), norms are 1; values are a counter-based hash of
// (seed, tensor, index), so a shape and seed always give the same model. Speed
// does not depend on the values (no sparsity shortcuts), so these models time
// like the real ones of the same shape and format.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "model/quantized_linear.h"

namespace lowbit {

// "tinyllama-1.1b" (dim 2048, 22 layers, 32 heads, 4 KV heads, FFN 5632, vocab
// 32000), "smollm2-135m" (576, 30, 9, 3, 1536, 49152, tied), "stories260k" (64,
// 5, 8, 4, 172, 512), or explicit dims "dim=2048,layers=22,heads=32,kv_heads=4,
// ffn=5632,vocab=32000[,tied=1][,ctx=2048]".
Expected<ModelConfig> shape_config(const std::string& name_or_dims);
// The preset names, for help texts.
std::string shape_names();

// A linear's storage format by name ("layers.3.q_proj", "lm_head"): "fp32" keeps
// it dense, any block format quantizes it with round-to-nearest and min-max scales.
using FormatForLinear = std::function<Expected<std::string>(const std::string& linear_name)>;

struct SyntheticModel {
  LlamaModel model;
  AttachReport report;  // which runtime kernels the quantized linears took
};

Expected<SyntheticModel> build_synthetic_model(const ModelConfig& config, const FormatForLinear& format_for,
                                               uint64_t seed, ThreadPool& pool, const AttachOptions& attach = {});

}  // namespace lowbit
