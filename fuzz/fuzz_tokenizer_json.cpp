// libFuzzer harness: a Hugging Face tokenizer.json (model vocab and merges,
// pre-tokenizer, normalizer, added tokens), loaded as --tokenizer loads it,
// then a short text encoded and decoded.
#include <cstdint>

#include "fuzz/fuzz_input.h"
#include "tokenizer/tokenizer.h"

namespace {
const lowbit::fuzz::InputFile& input() {
  static const lowbit::fuzz::InputFile file("tokenizer.json");
  return file;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  auto tokenizer = load_hf_tokenizer_json(input().write(data, size));
  if (!tokenizer.ok()) return 0;
  const Tokenizer& tok = **tokenizer;
  for (const int32_t id : tok.encode("Hello world, 123 <s> héllo\n\n  !!")) (void)tok.token_to_bytes(id);
  (void)tok.vocab_size();
  (void)tok.bos_id();
  (void)tok.eos_id();
  return 0;
}
