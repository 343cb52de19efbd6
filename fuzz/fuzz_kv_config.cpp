// libFuzzer harness: a KV-cache configuration file (`--kv FILE`,
// kvcache/kv_config_file.h): load_kv_config parses the JSON, the spec string,
// the per-layer bits and the codebooks. The same bytes are also tried as a
// --kv spec string (parse_kv_spec), which the file's "spec" field holds.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_input.h"
#include "kvcache/kv_config_file.h"

namespace {
const lowbit::fuzz::InputFile& input() {
  static const lowbit::fuzz::InputFile file("kv.json");
  return file;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  (void)load_kv_config(input().write(data, size));
  if (size <= 256) (void)parse_kv_spec(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
