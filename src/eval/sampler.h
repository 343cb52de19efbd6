// Token sampling (greedy, temperature, top-k, top-p) and the generation loop.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

struct SamplingOptions {
  float temperature = 0.0f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  uint64_t seed = 0;
};

// Picks the next token from logits [vocab]. Greedy ties go to the lowest id.
int32_t sample_token(const float* logits, int vocab, const SamplingOptions& options, std::mt19937_64& rng);

struct GenerateOptions {
  int max_new_tokens = 64;
  SamplingOptions sampling;
  bool stop_at_eos = true;
  KvCacheFactory kv_cache;  // empty: FP32
};

struct GenerateResult {
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> tokens;  // generated only
  double prompt_seconds = 0.0;
  double decode_seconds = 0.0;
  double kv_bytes_per_token = 0.0;  // KvCache::bytes_per_token of the cache used
  uint64_t kv_bytes_allocated = 0;  // KvCache::allocated_bytes
  double prompt_tokens_per_s() const;
  double tokens_per_s() const;  // decode rate
};

// Runs the prompt in one batched pass, then decodes one token at a time.
Expected<GenerateResult> generate(const LlamaModel& model, const Tokenizer& tokenizer,
                                  const std::vector<int32_t>& prompt_tokens, const GenerateOptions& options,
                                  ThreadPool& pool);

}  // namespace lowbit
