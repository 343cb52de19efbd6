// Encoding throughput (MB/s of UTF-8 text) of the two tokenizer algorithms on
// WikiText-2. Needs the shared folder (LOWBIT_SHARED_DIR, default ../shared).
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "core/mapped_file.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {
namespace {

std::string shared(const std::string& relative) {
  const char* env = std::getenv("LOWBIT_SHARED_DIR");
  return std::string(env != nullptr ? env : "../shared") + "/" + relative;
}

void BM_Encode(benchmark::State& state, const std::string& vocab) {
  auto text = read_text_file(shared("data/wikitext-2-raw/wiki.test.raw"));
  auto gguf = GgufFile::open(shared("tokenizers/llamacpp-vocab/" + vocab));
  if (!text.ok() || !gguf.ok()) {
    state.SkipWithError("shared test material missing (set LOWBIT_SHARED_DIR)");
    return;
  }
  auto tokenizer = load_gguf_tokenizer(gguf.value());
  if (!tokenizer.ok()) {
    state.SkipWithError(tokenizer.status().message().c_str());
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer.value()->encode(text.value()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(text->size()));
}
BENCHMARK_CAPTURE(BM_Encode, spm_llama, std::string("ggml-vocab-llama-spm.gguf"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, bpe_gpt2, std::string("ggml-vocab-gpt-2.gguf"))->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lowbit
