// End-to-end speed of a model: prompt processing and decode tokens/s over
// repeated runs (median and spread), the way llama-bench reports pp/tg.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"

namespace lowbit {

struct BenchOptions {
  int prompt_tokens = 512;   // pp: one batched forward of this many tokens
  int decode_tokens = 128;   // tg: this many one-token forwards after `depth` context tokens
  int repetitions = 5;
  uint64_t seed = 1;         // random token ids
  int depth = 0;             // tg decodes after a context of this many tokens (one untimed batched forward)
  KvCacheFactory kv_cache;   // caches of pp and tg; empty: FP32
  bool progress = false;     // a progress line on stderr (one unit per pp run and per tg run)
};

struct BenchResult {
  std::vector<double> pp_tps;   // every repetition
  std::vector<double> tg_tps;
  double pp_median = 0.0;
  double tg_median = 0.0;
  uint64_t peak_rss_bytes = 0;  // of this process, after the runs
};

Expected<BenchResult> run_bench(const LlamaModel& model, const BenchOptions& options, ThreadPool& pool);

double median(std::vector<double> values);

// Bytes of weights one decode step reads: every linear layer's stored bytes
// (packed, or FP32 for dense layers), the norms, and one embedding row.
uint64_t decode_weight_bytes(LlamaModel& model);

// Peak resident set size of this process so far (getrusage ru_maxrss).
uint64_t peak_rss_bytes();

}  // namespace lowbit
