// The KV-cache flags of `ppl` and `generate`: --kv SPEC|FILE, and for the
// calibrated options --kv-calib FILE (NUQ codebooks, KVTuner sensitivities),
// --kv-tune BITS and --kv-save FILE; resolving them into a cache factory; and
// the memory fields of the JSON report.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/common.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "kvcache/kv_spec.h"
#include "model/kv_cache.h"

namespace lowbit::cli {

struct KvFlags {
  std::string spec = "fp32";
  std::string calib_path;
  int calib_samples = 4;
  int calib_len = 512;
  double tune_bits = 0.0;  // 0: no tuning
  std::string save_path;
};

void add_kv_flags(CLI::App& app, KvFlags& flags);

struct ResolvedKv {
  KvSpec spec;
  KvCacheFactory factory;
  nlohmann::json calibration;  // what calibration did, for the report and the saved file
};

// Parses --kv, fits NUQ codebooks / tunes per-layer bits on --kv-calib when
// asked, checks the spec against the model and saves it under --kv-save.
Expected<ResolvedKv> resolve_kv(const KvFlags& flags, const RunnableModel& model, ThreadPool& pool, bool verbose);

// Adds kv, kv_bytes_per_token, kv_bytes_per_token_fp32, kv_bytes_allocated,
// kv_average_bits and peak_rss_bytes.
void add_kv_report(nlohmann::json& report, const ResolvedKv& kv, const ModelConfig& config, double bytes_per_token,
                   uint64_t allocated_bytes);

// Peak resident set size of this process (getrusage ru_maxrss), bytes.
uint64_t peak_rss_bytes();

}  // namespace lowbit::cli
