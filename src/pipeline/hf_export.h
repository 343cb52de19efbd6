// Writes a model as a Hugging Face folder that transformers and vLLM load:
//   export_safetensors         plain BF16/FP16/FP32 weights (a rotated or smoothed
//                              FP model, or a quantized one dequantized)
//   export_compressed_tensors  the quantized linears of a lowbit model in the
//                              compressed-tensors format (pipeline/ct_linear.h),
//                              everything else dense
// Both write config.json (the model's llama / mistral / qwen2 config; with
// "quantization_config" for compressed-tensors), model.safetensors or shards
// "model-0000i-of-0000n.safetensors" with model.safetensors.index.json, and the
// tokenizer files and generation_config.json of the Hugging Face folder the model
// came from (the source itself, or the source a .lowbit file records when that
// folder still exists). From a GGUF source (or a lowbit file quantized from one)
// with a SentencePiece vocabulary, tokenizer.json and tokenizer_config.json are
// written from the GGUF tokenizer keys (tokenizer/hf_tokenizer_writer.h); a GPT-2
// style GGUF vocabulary or a llama2.c source gets none, with a warning naming
// why. Without a generation_config.json to copy, one is written with the
// tokenizer's BOS/EOS ids.
//
// Tensor names are Hugging Face's (model.layers.N.self_attn.q_proj.weight, ...).
// q/k rows are stored in HF's half-split RoPE order: a model in lowbit's
// adjacent-pair layout (GGUF llama sources) has them permuted,
//   stored row  j*(head_dim/2) + i  of a head = lowbit row  2i + j,
// the inverse of what llama.cpp's converter does to HF checkpoints.
//
// The folder is written as DIR.tmp-<pid> beside DIR and renamed into place when
// complete; an existing DIR is an error unless `force` (then it is replaced).
// What the folder cannot express is refused, naming it: whatever
// ExportSource::runtime_transforms lists (activation quantization, QuaRot's
// online down_proj Hadamard, KV-cache settings, RMSNorm shifts).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "io/safetensors.h"
#include "model/model_source.h"
#include "pipeline/export.h"
#include "pipeline/export_source.h"

namespace lowbit {

struct HfExportOptions {
  std::string out_dir;
  SafetensorsDtype dtype = SafetensorsDtype::kBF16;  // dense tensors: BF16, F16 or F32
  bool force = false;   // replace an existing out_dir
  bool exact = false;   // compressed-tensors: fail instead of requantizing a tensor
  uint64_t max_shard_bytes = 5'000'000'000;  // Hugging Face's default shard size
  // A folder to copy the tokenizer files from instead of the model's origin (for
  // a GGUF or llama2.c source: the original Hugging Face model); "" = none.
  std::string tokenizer_dir;
  bool progress = false;  // a progress line on stderr over the tensor bytes written
};

struct HfExportReport {
  std::vector<std::string> files;     // written, relative to out_dir
  std::vector<std::string> warnings;  // one line each, naming the tensor or file
  uint64_t tensor_bytes = 0;          // data bytes over all shards
  uint64_t folder_bytes = 0;          // every file written
  uint64_t tensors = 0;               // safetensors entries
  int quantized_linears = 0;          // compressed-tensors: linears written quantized ...
  int requantized_linears = 0;        // ... of which requantized (a warning each)
  int dense_linears = 0;              // ... and linears written dense
};

Expected<HfExportReport> export_safetensors(const ExportSource& source, const HfExportOptions& options);
Expected<HfExportReport> export_compressed_tensors(const ExportSource& source, const HfExportOptions& options);

// The rows "safetensors" and "compressed-tensors" of the export table
// (pipeline/export.h): --type names the dense dtype (bf16, f16 or f32; default
// bf16), --tokenizer a tokenizer.json / tokenizer.model whose folder the
// tokenizer files are copied from.
Status check_hf_export_options(const ExportOptions& options);
Expected<ExportReport> export_safetensors_target(const ExportOptions& options);
Expected<ExportReport> export_compressed_tensors_target(const ExportOptions& options);

// The config.json keys lowbit's config determines: architectures / model_type,
// the shape, RoPE (theta, llama3 scaling), tied head, norm epsilon (its shortest
// text), hidden_act, torch_dtype (`dtype`), attention/mlp_bias false for llama and
// mistral. Error for an architecture without a Hugging Face class, or q/k/v
// biases other than qwen2's.
Expected<nlohmann::ordered_json> hf_config_json(const ModelConfig& config, SafetensorsDtype dtype);

// The row order that stores q/k rows of an adjacent-pair model half-split: stored
// row r is row order[r] ([n_heads * head_dim] rows).
std::vector<int64_t> half_split_row_order(int n_heads, int head_dim);

}  // namespace lowbit
