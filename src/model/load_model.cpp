#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/loader.h"

namespace lowbit {

Expected<LoadedModel> load_model(const std::string& path, const LoadOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return make_error("{}: no such file or folder", path);
  Expected<LoadedModel> loaded = Status();
  if (fs::is_directory(path, ec)) {
    loaded = load_hf_model(path);
  } else {
    char magic[4] = {};
    std::ifstream in(path, std::ios::binary);
    in.read(magic, 4);
    if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) {
      loaded = load_gguf_model(path);
    } else if (fs::path(path).extension() == ".bin") {
      loaded = load_llama2c_model(path, options.tokenizer_path);
    } else if (fs::path(path).extension() == ".gguf") {
      return make_error("{}: not a GGUF file (bad magic)", path);
    } else {
      return make_error("{}: unrecognised model (expected a .gguf file, a Hugging Face folder or a llama2.c .bin)",
                        path);
    }
  }
  if (!loaded.ok()) return loaded;
  if (!options.tokenizer_path.empty() && loaded->summary.format != "llama2c") {
    const std::string& tp = options.tokenizer_path;
    if (tp.size() >= 5 && tp.substr(tp.size() - 5) == ".json") {
      LB_ASSIGN_OR_RETURN(loaded->tokenizer, load_hf_tokenizer_json(tp));
    } else if (tp.size() >= 6 && tp.substr(tp.size() - 6) == ".model") {
      LB_ASSIGN_OR_RETURN(loaded->tokenizer, load_sentencepiece_model(tp));
    } else {
      LB_ASSIGN_OR_RETURN(loaded->tokenizer, load_llama2c_tokenizer(tp, loaded->config.vocab_size));
    }
  }
  return loaded;
}

}  // namespace lowbit
