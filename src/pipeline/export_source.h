// A model opened for export (export.h): the list of its tensors under lowbit's
// names with their stored format, known before any tensor is read (so a target
// can plan and refuse before writing), and each tensor in its stored form on
// demand:
//   lowbit model file   the formats the recipe chose (QuantizedWeight as stored)
//   GGUF                each tensor's bytes as stored: F32 as "fp32", F16/BF16 as
//                       "fp16"/"bf16", llama.cpp block types under their names
//   Hugging Face, llama2.c   FP32 ("fp32"), read one decoder layer at a time
// Shapes are lowbit's: [rows, cols] = [out, in] for matrices, [n] for vectors.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/gguf.h"
#include "model/config.h"
#include "model/model_source.h"
#include "quant/quantized_weight.h"

namespace lowbit {

struct ExportTensor {
  // "token_embedding", "layers.3.attn_norm", "layers.3.attn_norm_bias",
  // "layers.3.q_proj", "layers.3.q_proj.bias", ..., "output_norm", "lm_head", "rope_freqs"
  std::string name;
  std::vector<int64_t> shape;  // [rows, cols] or [n]
  int layer = -1;              // decoder layer, -1 for the model-level tensors
  std::string role;            // name without "layers.N.": "q_proj", "q_proj.bias", "attn_norm", "lm_head", ...
  std::string format;          // stored format: "fp32", a block format name, or a GGUF block type name
  bool outliers = false;       // sparse full-precision outliers stored besides the codes (EasyQuant)
  bool lowrank = false;        // a low-rank correction U·V stored besides the codes (LoRC)

  bool is_matrix() const { return shape.size() == 2; }
  bool side_tables() const { return outliers || lowrank; }
};

enum class ExportSourceKind {
  kLowbit,  // formats chosen by a recipe
  kGguf,    // formats as a GGUF file stores them
  kFloat,   // Hugging Face folder or llama2.c .bin: FP32 weights
};

class ExportSource {
 public:
  static Expected<std::unique_ptr<ExportSource>> open(const std::string& path, const LoadOptions& options = {});
  virtual ~ExportSource() = default;

  const ModelConfig& config() const { return model_->config(); }
  const std::string& path() const { return model_->path(); }
  const ModelSource& model() const { return *model_; }
  ExportSourceKind kind() const { return kind_; }
  const std::vector<ExportTensor>& tensors() const { return tensors_; }
  // The GGUF header of a GGUF source or of a lowbit file (tokenizer.* keys, general.*), else null.
  virtual const GgufFile* gguf_header() const { return nullptr; }

  // What the model computes beyond a plain Llama forward pass over its stored
  // weights, one line each naming it (online Hadamard transforms, activation
  // quantization, a KV-cache configuration, RMSNorm shifts); empty when none.
  Expected<std::vector<std::string>> runtime_transforms() const;

  // The tensor in its stored form (outliers and low-rank factors included);
  // vectors come as [1, n]. Errors name the file and the tensor.
  virtual Expected<QuantizedWeight> read(const ExportTensor& tensor) const = 0;

 protected:
  ExportSource(std::unique_ptr<ModelSource> model, ExportSourceKind kind) : model_(std::move(model)), kind_(kind) {}
  // Every tensor a Llama-family model may hold, with lowbit's names and shapes
  // (format unset); each source keeps those it has.
  std::vector<ExportTensor> candidate_tensors() const;
  virtual Expected<nlohmann::json> kv_configuration() const { return nlohmann::json(nullptr); }

  std::unique_ptr<ModelSource> model_;
  ExportSourceKind kind_;
  std::vector<ExportTensor> tensors_;
};

// A stored vector or matrix of FP32 values as a QuantizedWeight in "fp32" ([rows, cols]).
QuantizedWeight fp32_weight(const float* values, int64_t rows, int64_t cols);

}  // namespace lowbit
