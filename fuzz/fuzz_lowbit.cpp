// libFuzzer harness: a .lowbit container (a GGUF header whose metadata holds the
// JSON index of the tensors, then the blobs), read as `lowbit info` reads it:
// LowbitModelFile::open and summary(), then the model source (config, tokenizer,
// every tensor read and dequantized).
#include <cstdint>

#include "fuzz/fuzz_input.h"
#include "model/loader.h"
#include "model/lowbit_file.h"

namespace {
const lowbit::fuzz::InputFile& input() {
  static const lowbit::fuzz::InputFile file("model.lowbit");
  return file;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  const std::string& path = input().write(data, size);
  if (auto file = LowbitModelFile::open(path); file.ok()) (void)file->summary();
  auto source = open_model_source(path, LoadOptions{});
  if (!source.ok()) return 0;
  auto info = read_model_info(**source);
  if (!info.ok()) return 0;
  if (info->tokenizer != nullptr) (void)info->tokenizer->encode("Hello world, 123");
  (void)read_weights(**source);
  return 0;
}
