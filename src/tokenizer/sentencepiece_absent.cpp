// load_sentencepiece_model in builds without libsentencepiece (the lean aarch64
// cross build, CMakeLists.txt LOWBIT_CORE_ONLY): a tokenizer.model cannot be
// read there, and the caller gets an error naming the file. The GGUF, llama2.c
// and tokenizer.json tokenizers do not need the library.
#include "tokenizer/tokenizer.h"

namespace lowbit {

Expected<std::unique_ptr<Tokenizer>> load_sentencepiece_model(const std::string& path) {
  return make_error("{}: this build has no libsentencepiece (configured with LOWBIT_CORE_ONLY without it)", path);
}

}  // namespace lowbit
