// libFuzzer harness: a GGUF model file, read as `lowbit info` reads it.
// GgufFile::open (header, metadata, tensor infos), the model config and the
// tokenizer from the metadata (read_model_info), every weight dequantized to
// FP32 (read_weights), and a short text through the tokenizer. Every step must
// return a value or an error: a crash, a sanitizer report, a hang or an
// allocation past -rss_limit_mb is a bug.
#include <cstdint>

#include "fuzz/fuzz_input.h"
#include "io/gguf.h"
#include "model/loader.h"

namespace {
const lowbit::fuzz::InputFile& input() {
  static const lowbit::fuzz::InputFile file("model.gguf");
  return file;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  const std::string& path = input().write(data, size);
  // The raw reader on its own: metadata accessors over whatever keys are present.
  if (auto gguf = GgufFile::open(path); gguf.ok()) {
    for (const auto& [key, value] : gguf->metadata()) {
      (void)gguf->get_int(key);
      (void)gguf->get_float(key);
      (void)gguf->get_string(key);
      (void)gguf->get_string_array(key);
      (void)gguf->get_int_array(key);
    }
  }
  auto source = open_model_source(path, LoadOptions{});
  if (!source.ok()) return 0;
  auto info = read_model_info(**source);
  if (!info.ok()) return 0;
  if (info->tokenizer != nullptr) {
    for (const int32_t id : info->tokenizer->encode("Hello world, 123 <s> héllo\n\n  !!")) {
      (void)info->tokenizer->token_to_bytes(id);
    }
  }
  (void)read_weights(**source);
  return 0;
}
