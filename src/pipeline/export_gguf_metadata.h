// The metadata of an exported GGUF file, with the keys llama.cpp reads for the
// llama and qwen2 architectures (llama-arch.cpp LLM_KV_*; the types are those
// gguf-py's writer uses, which llama.cpp's loader checks):
//   general.architecture (string), general.name (string), general.alignment (u32),
//   general.file_type (u32, llama_ftype), general.quantization_version (u32, 2, when
//   a tensor is quantized), general.quantized_by (string "lowbit"), general.* of a
//   GGUF source
//   ARCH.vocab_size, context_length, embedding_length, block_count,
//   feed_forward_length, attention.head_count, attention.head_count_kv,
//   rope.dimension_count (u32); attention.layer_norm_rms_epsilon, rope.freq_base
//   (f32); attention.key_length / value_length (u32) when head_dim != dim / n_heads;
//   ARCH.rope.scaling.* as a GGUF source has them (Llama-3 scaling travels as the
//   rope_freqs.weight tensor instead, as llama.cpp's converter writes it)
//   tokenizer.*: every key of the source's GGUF header (GGUF source, or a lowbit
//   file made from one), or of the --tokenizer GGUF file
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "io/gguf_writer.h"
#include "model/config.h"
#include "pipeline/export_source.h"

namespace lowbit {

// How llama.cpp runs a lowbit architecture.
struct GgufArchitecture {
  const char* lowbit;   // ModelConfig::architecture
  const char* gguf;     // general.architecture
  RopeLayout rope;      // the pairs its RoPE rotates: llama NORM (adjacent), qwen2 NEOX (half-split)
  bool linear_biases;   // o/gate/up/down biases load (llama); qwen2 loads q/k/v biases only
};
Expected<const GgufArchitecture*> find_gguf_architecture(const ModelConfig& config, const std::string& source);

struct GgufFileFacts {
  int llama_ftype = 0;     // general.file_type
  bool quantized = false;  // a tensor is in a block type
};

// general.* and ARCH.* keys.
void set_gguf_model_metadata(GgufWriter& w, const ExportSource& source, const GgufArchitecture& arch,
                             const GgufFileFacts& facts);

// Copies the tokenizer.* keys from `tokenizer_path` (a GGUF file) when given,
// else from the source's GGUF header; errors when neither has them (Hugging Face
// and llama2.c tokenizers are not converted) or when their vocabulary is not the
// model's.
Status set_gguf_tokenizer_metadata(GgufWriter& w, const ExportSource& source, const std::string& tokenizer_path);

// Llama-3 RoPE scaling as llama.cpp's rope_freqs.weight: the divisor of each of
// the head_dim / 2 frequencies (1 for short wavelengths, `factor` for long ones,
// interpolated between), as its converter computes them in float32.
std::vector<float> llama3_rope_freq_factors(const ModelConfig& config);

}  // namespace lowbit
