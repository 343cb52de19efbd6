// Loads a Llama-family model from any supported file layout into FP32 weights,
// its config and its tokenizer: opens a ModelSource and reads every piece, so
// whole-model loading and layer-by-layer streaming share one reader per format.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/status.h"
#include "model/config.h"
#include "model/model_source.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

struct LoadedModel {
  ModelConfig config;
  ModelWeights weights;
  std::unique_ptr<Tokenizer> tokenizer;  // may be null for llama2c without --tokenizer
  FileSummary summary;
  // Linears the file stores quantized (ModelSource::quantized_linears); `weights`
  // holds them dequantized.
  std::map<std::string, QuantizedWeight> quantized_linears;
  // Activation quantizers of the linears (ModelSource::act_quantizers), to wrap
  // around them once the model is built (model/act_quant_linear.h).
  std::map<std::string, ActQuantAttachment> act_quantizers;
  // The rotation the weights carry (ModelSource::rotation): the runtime wraps
  // down_proj in its online transform (model/online_hadamard_linear.h).
  std::optional<RotationSpec> rotation;
};

// Reads every piece of an opened model (each checked as ModelSource checks it)
// and its tokenizer.
Expected<LoadedModel> read_model(const ModelSource& source);
// The parts of read_model: everything but the weights and the quantized linears
// (config, summary, tokenizer, activation quantizers, rotation) ...
Expected<LoadedModel> read_model_info(const ModelSource& source);
// ... and the FP32 weights.
Expected<ModelWeights> read_weights(const ModelSource& source);

// Chooses the loader by the path: a folder is a Hugging Face checkpoint, a file
// starting with "GGUF" is GGUF, a ".bin" is llama2.c.
Expected<LoadedModel> load_model(const std::string& path, const LoadOptions& options);

Expected<LoadedModel> load_gguf_model(const std::string& path);
Expected<LoadedModel> load_hf_model(const std::string& folder);
Expected<LoadedModel> load_llama2c_model(const std::string& path, const std::string& tokenizer_path);

}  // namespace lowbit
