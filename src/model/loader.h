// Loads a Llama-family model from any supported file layout into FP32 weights,
// its config and its tokenizer.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "model/config.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

struct LoadedModel {
  ModelConfig config;
  ModelWeights weights;
  std::unique_ptr<Tokenizer> tokenizer;  // may be null for llama2c without --tokenizer
  FileSummary summary;
};

struct LoadOptions {
  std::string tokenizer_path;  // llama2.c tokenizer.bin, or an override
};

// Chooses the loader by the path: a folder is a Hugging Face checkpoint, a file
// starting with "GGUF" is GGUF, a ".bin" is llama2.c.
Expected<LoadedModel> load_model(const std::string& path, const LoadOptions& options);

Expected<LoadedModel> load_gguf_model(const std::string& path);
Expected<LoadedModel> load_hf_model(const std::string& folder);
Expected<LoadedModel> load_llama2c_model(const std::string& path, const std::string& tokenizer_path);

}  // namespace lowbit
