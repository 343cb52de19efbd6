#include "cli/kv_cli.h"

#include <sys/resource.h>

#include <cstdio>

#include "kvcache/kv_calibration.h"
#include "kvcache/kv_config_file.h"
#include "kvcache/kv_tuner.h"
#include "kvcache/quantized_kv_cache.h"
#include "pipeline/calibration.h"

namespace lowbit::cli {

void add_kv_flags(CLI::App& app, KvFlags& f) {
  app.add_option("--kv", f.spec, kv_spec_help())->capture_default_str();
  app.add_option("--kv-calib", f.calib_path,
                 "Calibration text or .jsonl for -nuq codebooks and --kv-tune (random windows, seed 0)")
      ->check(CLI::ExistingFile);
  app.add_option("--kv-calib-samples", f.calib_samples, "Calibration windows")->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--kv-calib-len", f.calib_len, "Tokens per calibration window")->check(CLI::Range(16, 1 << 16))
      ->capture_default_str();
  app.add_option("--kv-tune", f.tune_bits,
                 "KVTuner: choose per-layer (key, value) bits from {2,3,4,8} with this mean (needs --kv-calib)")
      ->check(CLI::Range(2.0, 8.0));
  app.add_option("--kv-save", f.save_path, "Save the resolved KV configuration (per-layer bits, codebooks) as JSON");
}

Expected<ResolvedKv> resolve_kv(const KvFlags& f, const RunnableModel& m, ThreadPool& pool, bool verbose) {
  ResolvedKv out;
  auto spec = resolve_kv_argument(f.spec);
  if (!spec.ok()) return spec.status().with_context("--kv");
  out.spec = std::move(spec).value();
  const bool need_codebooks = out.spec.uses_codebooks() && out.spec.codebooks.empty();
  const bool tune = f.tune_bits > 0.0;
  if ((need_codebooks || tune) && f.calib_path.empty()) {
    return make_error("--kv {}: {} needs calibration data: pass --kv-calib FILE (or a saved configuration to --kv)",
                      f.spec, tune ? "--kv-tune" : "-nuq");
  }
  if (need_codebooks || tune) {
    const Tokenizer& tok = *m.loaded.tokenizer;
    CalibrationOptions co;
    co.n_samples = f.calib_samples;
    co.seq_len = f.calib_len;
    co.bos = tok.add_bos() && tok.bos_id() >= 0 ? CalibrationBos::kFirstToken : CalibrationBos::kNone;
    auto set = load_calibration(f.calib_path, tok, co);
    if (!set.ok()) return set.status().with_context("--kv-calib");
    std::vector<std::vector<int32_t>> sequences;
    for (int i = 0; i < set->n_samples(); ++i) sequences.emplace_back(set->sample(i), set->sample(i) + set->seq_len);
    out.calibration = {{"file", f.calib_path}, {"samples", f.calib_samples}, {"tokens_per_sample", f.calib_len}};
    if (tune) {
      if (verbose) std::fprintf(stderr, "kv: measuring per-layer sensitivity on %zu windows\n", sequences.size());
      auto sens = measure_kv_sensitivity(m.model, sequences, out.spec, {2, 3, 4, 8}, pool);
      if (!sens.ok()) return sens.status().with_context("--kv-tune");
      auto bits = choose_kv_bits(*sens, f.tune_bits);
      if (!bits.ok()) return bits.status().with_context("--kv-tune");
      auto tuned = kv_spec_with_layer_bits(out.spec, *bits);
      if (!tuned.ok()) return tuned.status().with_context("--kv-tune");
      out.spec = std::move(tuned).value();
      out.calibration["tune_average_bits"] = f.tune_bits;
      out.calibration["sensitivity"] = sens->to_json();
    }
    if (out.spec.uses_codebooks() && out.spec.codebooks.empty()) {
      if (verbose) std::fprintf(stderr, "kv: fitting NUQ codebooks on %zu windows\n", sequences.size());
      auto books = fit_kv_codebooks(m.model, sequences, out.spec, pool);
      if (!books.ok()) return books.status().with_context("--kv-calib");
      out.spec.codebooks = std::move(books).value();
    }
  }
  LB_RETURN_IF_ERROR(check_kv_spec(out.spec, m.model.kv_cache_shape(1)).with_context("--kv"));
  if (!f.save_path.empty()) {
    LB_RETURN_IF_ERROR(save_kv_config(f.save_path, out.spec, out.calibration).with_context("--kv-save"));
  }
  if (verbose) {
    std::fprintf(stderr, "kv: %s, %.2f bits on average\n", out.spec.describe().c_str(),
                 out.spec.average_bits(m.model.config().n_layers));
  }
  out.factory = make_kv_cache_factory(out.spec);
  return out;
}

uint64_t peak_rss_bytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

void add_kv_report(nlohmann::json& report, const ResolvedKv& kv, const ModelConfig& config, double bytes_per_token,
                   uint64_t allocated_bytes) {
  report["kv"] = kv.spec.describe();
  report["kv_average_bits"] = kv.spec.average_bits(config.n_layers);
  report["kv_bytes_per_token"] = bytes_per_token;
  report["kv_bytes_per_token_fp32"] = 2.0 * config.n_layers * config.kv_dim() * sizeof(float);
  report["kv_bytes_allocated"] = allocated_bytes;
  if (!kv.calibration.is_null()) report["kv_calibration"] = kv.calibration;
  report["peak_rss_bytes"] = peak_rss_bytes();
}

}  // namespace lowbit::cli
