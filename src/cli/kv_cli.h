// The KV-cache flags of `ppl`, `generate` and `quantize`: --kv SPEC|FILE, and for
// the calibrated options --kv-calib FILE (NUQ codebooks, KVTuner sensitivities),
// --kv-tune BITS and --kv-save FILE; resolving them into a cache factory (or,
// for `quantize`, into the configuration stored in the model file as lowbit.kv);
// and the memory fields of the JSON report.
//
// Which configuration a run uses: --kv when given; else the lowbit.kv stored in
// a lowbit model file; else the FP32 cache. ResolvedKv::origin says which.
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
  std::string spec;  // empty: --kv not given
  std::string calib_path;
  int calib_samples = 4;
  int calib_len = 512;
  double tune_bits = 0.0;  // 0: no tuning
  std::string save_path;
  std::string attention = "fused";  // --kv-attention: fused | materialize (kv_fused_attention.h)
};

void add_kv_flags(CLI::App& app, KvFlags& flags);
// --kv-attention fused|materialize (commands that run the model).
void add_kv_attention_flag(CLI::App& app, KvFlags& flags);

struct ResolvedKv {
  KvSpec spec;
  KvCacheFactory factory;
  nlohmann::json calibration;  // what calibration did, for the report and the saved file
  std::string origin;          // "--kv", "model file" (lowbit.kv) or "default" (FP32)
};

// The KV configuration a lowbit model file stores (lowbit.kv), or null when the
// file is not a lowbit model file or stores none.
Expected<nlohmann::json> stored_kv_config(const std::string& model_path);

// Takes --kv, else the configuration stored in `model_path` (a lowbit file),
// else FP32; fits NUQ codebooks / tunes per-layer bits on --kv-calib when asked,
// checks the spec against the model and saves it under --kv-save.
Expected<ResolvedKv> resolve_kv(const KvFlags& flags, const std::string& model_path, const RunnableModel& model,
                                ThreadPool& pool, bool verbose);

// For `quantize --kv`: the configuration to store as lowbit.kv (kv_config_to_json),
// null when --kv is not given. Loads the source model only when -nuq codebooks or
// --kv-tune need calibration runs (codebooks are fitted on the source model's keys
// and values); otherwise checks the spec against the source's shape.
Expected<nlohmann::json> kv_config_for_quantize(const KvFlags& flags, const std::string& model_path,
                                                const std::string& tokenizer_path, ThreadPool& pool, bool verbose);

// Adds kv, kv_bytes_per_token, kv_bytes_per_token_fp32, kv_bytes_allocated,
// kv_average_bits and peak_rss_bytes.
void add_kv_report(nlohmann::json& report, const ResolvedKv& kv, const ModelConfig& config, double bytes_per_token,
                   uint64_t allocated_bytes);

// Peak resident set size of this process (getrusage ru_maxrss), bytes.
uint64_t peak_rss_bytes();

}  // namespace lowbit::cli
