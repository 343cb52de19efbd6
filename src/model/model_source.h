// An opened model (GGUF file, Hugging Face folder, llama2.c .bin) that keeps its
// memory mapping and dequantizes one piece to FP32 on demand, so a quantization
// pipeline can hold a single decoder layer in FP32 while the rest stays mapped.
// Loading a whole model (loader.h) is "open a source, read every piece".
//
// Each format implements the read_* hooks; the public accessors check every piece
// the same way for all formats (shape against the config, every value finite) and
// their errors name the file and the tensor.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/ggml_types.h"
#include "model/config.h"
#include "model/rotation_spec.h"
#include "model/weights.h"
#include "quant/act_quant.h"
#include "quant/quantized_weight.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

// How a linear's weight is stored when its storage is a GGUF tensor type.
struct LinearGgmlStorage {
  GgmlType type = GgmlType::F32;
  // Types with a block minimum (Q4_1, Q5_1: x = d·q + m): m of every block,
  // [rows, cols / 32]; empty for other types.
  std::vector<float> block_mins;
};

struct LoadOptions {
  std::string tokenizer_path;  // llama2.c tokenizer.bin, or an override for any format
};

class ModelSource {
 public:
  virtual ~ModelSource() = default;
  ModelSource(const ModelSource&) = delete;
  ModelSource& operator=(const ModelSource&) = delete;

  const ModelConfig& config() const { return config_; }
  const FileSummary& summary() const { return summary_; }
  const std::string& path() const { return summary_.path; }

  // Every call reads (dequantizes) the piece again; nothing is cached.
  Expected<std::vector<float>> token_embedding() const;    // [vocab, dim]
  Expected<LayerWeights> layer(int index) const;           // decoder layer `index`, FP32
  Expected<std::vector<float>> output_norm() const;        // [dim]
  Expected<Matrix> lm_head() const;                        // [vocab, dim]; empty when tied
  Expected<std::vector<float>> rope_freq_factors() const;  // [head_dim / 2]; empty when absent

  // The tokenizer LoadOptions::tokenizer_path names (chosen by extension: .json,
  // .model, else llama2.c tokenizer.bin), else the file's own; null when there is
  // neither (a llama2.c .bin opened without a tokenizer path).
  Expected<std::unique_ptr<Tokenizer>> tokenizer() const;

  // The packed form of every linear layer the file stores quantized (a lowbit
  // model file), by linear name ("layers.3.q_proj", "lm_head"); empty for files
  // of FP weights. layer() and lm_head() return the same layers dequantized.
  virtual Expected<std::map<std::string, QuantizedWeight>> quantized_linears() const;
  // The activation quantizer of every linear the file gives one (a lowbit model
  // file with an "act" recipe), by linear name; empty for other files.
  virtual Expected<std::map<std::string, ActQuantAttachment>> act_quantizers() const;
  // The QuaRot rotation the weights carry (a lowbit model file with a "rotation"
  // recipe: model/rotation_spec.h); nullopt for other files.
  virtual Expected<std::optional<RotationSpec>> rotation() const;

  // The GGUF tensor type (io/ggml_types.h) each linear's weight is stored in,
  // by linear name ("layers.3.q_proj", "lm_head"; a tied head takes the
  // embedding's), for every linear the file stores as one: all linears of a
  // GGUF file; the linears of a lowbit model file stored as a GGUF block type,
  // "fp16", "bf16" or "fp32" without low-rank or outlier side parts. Empty for
  // other files. What `ppl --arith llamacpp` computes each linear by
  // (model/llamacpp_linear.h).
  virtual Expected<std::map<std::string, LinearGgmlStorage>> linear_ggml_storage() const;

  // Whether stored_tensor() gives every piece in its stored form (a lowbit model
  // file), so the runtime can pack quantized tensors without an FP32 copy
  // (model/runtime_model.h). False for files of FP weights.
  virtual bool has_stored_tensors() const;
  // The stored form of tensor `name` ("token_embedding", "layers.3.attn_norm",
  // "layers.3.q_proj", "layers.3.q_proj.bias", "output_norm", "lm_head",
  // "rope_freqs"; norms and unquantized tensors in format "fp32"), checked against
  // `shape`; nullopt when the file has no such tensor or no stored tensors. Errors
  // name the file and the tensor. Once called, the tensor's mapped bytes are
  // dropped from memory (the result is a copy; reading again reads the file).
  virtual Expected<std::optional<QuantizedWeight>> stored_tensor(const std::string& name,
                                                                 const std::vector<int64_t>& shape) const;

 protected:
  ModelSource(ModelConfig config, FileSummary summary, LoadOptions options);

  virtual Expected<std::vector<float>> read_token_embedding() const = 0;
  virtual Expected<LayerWeights> read_layer(int index) const = 0;  // index already range-checked
  virtual Expected<std::vector<float>> read_output_norm() const = 0;
  virtual Expected<Matrix> read_lm_head() const = 0;  // called only when untied
  virtual Expected<std::vector<float>> read_rope_freq_factors() const = 0;
  virtual Expected<std::unique_ptr<Tokenizer>> read_tokenizer() const = 0;

 private:
  ModelConfig config_;
  FileSummary summary_;
  LoadOptions options_;
};

// Chooses the format by the path: a folder is a Hugging Face checkpoint, a file
// starting with "GGUF" is a lowbit model file when its general.architecture is
// "lowbit" (model/lowbit_file.h) and GGUF otherwise, a ".bin" is llama2.c.
Expected<std::unique_ptr<ModelSource>> open_model_source(const std::string& path, const LoadOptions& options);

// One per format (load_gguf.cpp, load_hf.cpp, load_llama2c.cpp). Opening parses
// the headers and the config and checks that the file is complete; tensors are
// read later, one piece at a time.
Expected<std::unique_ptr<ModelSource>> open_gguf_source(const std::string& path, const LoadOptions& options);
Expected<std::unique_ptr<ModelSource>> open_hf_source(const std::string& folder, const LoadOptions& options);
Expected<std::unique_ptr<ModelSource>> open_llama2c_source(const std::string& path, const LoadOptions& options);
Expected<std::unique_ptr<ModelSource>> open_lowbit_source(const std::string& path, const LoadOptions& options);

// Checks one decoder layer against the config: every shape (biases included) and
// every value finite. Errors name `source` and the tensor ("layers.3.k_proj").
Status validate_layer_weights(const LayerWeights& layer, const ModelConfig& config, int index,
                              const std::string& source);

}  // namespace lowbit
