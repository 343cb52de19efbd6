// libFuzzer harness: a .safetensors file (8-byte header length, JSON header,
// data): SafetensorsFile::open checks the header and every tensor's byte range;
// each tensor is then converted to FP32.
#include <cstdint>

#include "fuzz/fuzz_input.h"
#include "io/safetensors.h"

namespace {
const lowbit::fuzz::InputFile& input() {
  static const lowbit::fuzz::InputFile file("model.safetensors");
  return file;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  auto file = SafetensorsFile::open(input().write(data, size));
  if (!file.ok()) return 0;
  for (const SafetensorsTensor& t : file->tensors()) {
    (void)t.n_elements();
    (void)file->find(t.name);
    (void)file->to_f32(t);
  }
  return 0;
}
