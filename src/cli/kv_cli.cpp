#include "cli/kv_cli.h"

#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "kvcache/kv_calibration.h"
#include "kvcache/kv_config_file.h"
#include "kvcache/kv_tuner.h"
#include "kvcache/quantized_kv_cache.h"
#include "io/gguf.h"
#include "io/lowbit_container.h"
#include "model/lowbit_file.h"
#include "model/model_source.h"
#include "pipeline/calibration.h"

namespace lowbit::cli {

void add_kv_flags(CLI::App& app, KvFlags& f) {
  app.add_option("--kv", f.spec,
                 std::string(kv_spec_help()) +
                     ". Default: the configuration stored in a lowbit model file (lowbit.kv), else fp32");
  app.add_option("--kv-calib", f.calib_path,
                 "Calibration text or .jsonl for -nuq codebooks, -reorder and --kv-tune (random windows, seed 0)")
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

void add_kv_attention_flag(CLI::App& app, KvFlags& f) {
  app.add_option("--kv-attention", f.attention,
                 "One-token attention over a quantized KV cache: fused = read the codes in place where the spec "
                 "allows (integer codes, no NUQ/FP8/FP4, sparse, pre-RoPE or rotation), materialize = decode the "
                 "history to FP32 first")
      ->check(CLI::IsMember({"fused", "materialize"}))
      ->capture_default_str();
}

Expected<nlohmann::json> stored_kv_config(const std::string& model_path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model_path, ec)) return nlohmann::json();
  char magic[4] = {};
  std::ifstream in(model_path, std::ios::binary);
  in.read(magic, 4);
  if (in.gcount() != 4 || std::memcmp(magic, "GGUF", 4) != 0) return nlohmann::json();
  LB_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(model_path));
  if (!is_lowbit_container(gguf)) return nlohmann::json();
  LB_ASSIGN_OR_RETURN(LowbitModelFile file, LowbitModelFile::open(model_path));
  return file.info().kv;
}

namespace {

// Whether the spec needs runs of the model on calibration data.
bool needs_calibration(const KvSpec& spec, const KvFlags& f) {
  return spec.needs_fitting() || f.tune_bits > 0.0;
}

// Tunes per-layer bits and fits NUQ codebooks on --kv-calib when the spec needs them.
Status calibrate(const KvFlags& f, const RunnableModel& m, ThreadPool& pool, bool verbose, ResolvedKv& out) {
  if (!needs_calibration(out.spec, f)) return Status::ok_status();
  const bool tune = f.tune_bits > 0.0;
  if (f.calib_path.empty()) {
    return make_error("--kv {}: {} needs calibration data: pass --kv-calib FILE (or a saved configuration to --kv)",
                      out.spec.name, tune ? "--kv-tune" : out.spec.uses_codebooks() ? "-nuq" : "-reorder");
  }
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
  // The order first: tuning and the codebooks see the keys as the reordered cache stores them.
  if (out.spec.reorder_keys && out.spec.key_order.empty()) {
    if (verbose) std::fprintf(stderr, "kv: measuring key channel magnitudes on %zu windows\n", sequences.size());
    auto order = fit_kv_key_order(m.model, sequences, out.spec, pool);
    if (!order.ok()) return order.status().with_context("--kv-calib");
    out.spec.key_order = std::move(order).value();
  }
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
  return Status::ok_status();
}

KvCacheShape shape_of(const ModelConfig& c) { return KvCacheShape{c.n_layers, 1, c.n_kv_heads, c.head_dim}; }

}  // namespace

Expected<ResolvedKv> resolve_kv(const KvFlags& f, const std::string& model_path, const RunnableModel& m,
                                ThreadPool& pool, bool verbose) {
  ResolvedKv out;
  LB_ASSIGN_OR_RETURN(nlohmann::json stored, stored_kv_config(model_path));
  if (!f.spec.empty()) {
    auto spec = resolve_kv_argument(f.spec);
    if (!spec.ok()) return spec.status().with_context("--kv");
    out.spec = std::move(spec).value();
    out.origin = "--kv";
    if (verbose && !stored.is_null()) {
      std::fprintf(stderr, "kv: --kv %s overrides the configuration stored in %s (lowbit.kv: %s)\n", f.spec.c_str(),
                   model_path.c_str(), stored.value("spec", "?").c_str());
    }
  } else if (!stored.is_null()) {
    auto spec = kv_config_from_json(stored, model_path + " (lowbit.kv)");
    if (!spec.ok()) return spec.status();
    out.spec = std::move(spec).value();
    out.origin = "model file";
    if (verbose) std::fprintf(stderr, "kv: using the configuration stored in %s (lowbit.kv)\n", model_path.c_str());
  } else {
    out.origin = "default";
  }
  LB_RETURN_IF_ERROR(calibrate(f, m, pool, verbose, out));
  LB_RETURN_IF_ERROR(check_kv_spec(out.spec, m.model.kv_cache_shape(1)).with_context("--kv"));
  if (!f.save_path.empty()) {
    LB_RETURN_IF_ERROR(save_kv_config(f.save_path, out.spec, out.calibration).with_context("--kv-save"));
  }
  if (verbose) {
    std::fprintf(stderr, "kv: %s, %.2f bits on average\n", out.spec.describe().c_str(),
                 out.spec.average_bits(m.model.config().n_layers));
  }
  LB_ASSIGN_OR_RETURN(const KvAttentionMode attention, parse_kv_attention_mode(f.attention));
  if (verbose) {
    std::fprintf(stderr, "%s\n",
                 describe_decode_attention(out.spec, m.model.config().n_layers, attention).c_str());
  }
  out.factory = make_kv_cache_factory(out.spec, attention);
  return out;
}

Expected<nlohmann::json> kv_config_for_quantize(const KvFlags& f, const std::string& model_path,
                                                const std::string& tokenizer_path, ThreadPool& pool, bool verbose) {
  if (f.spec.empty()) {
    if (f.tune_bits > 0.0 || !f.calib_path.empty() || !f.save_path.empty()) {
      return make_error("--kv-calib, --kv-tune and --kv-save apply to --kv SPEC: pass --kv");
    }
    return nlohmann::json();
  }
  ResolvedKv out;
  auto spec = resolve_kv_argument(f.spec);
  if (!spec.ok()) return spec.status().with_context("--kv");
  out.spec = std::move(spec).value();
  if (needs_calibration(out.spec, f)) {
    LB_ASSIGN_OR_RETURN(RunnableModel m, load_runnable(model_path, tokenizer_path));
    LB_RETURN_IF_ERROR(calibrate(f, m, pool, verbose, out));
    LB_RETURN_IF_ERROR(check_kv_spec(out.spec, m.model.kv_cache_shape(1)).with_context("--kv"));
  } else {
    LoadOptions options;
    options.tokenizer_path = tokenizer_path;
    LB_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model_source(model_path, options));
    LB_RETURN_IF_ERROR(check_kv_spec(out.spec, shape_of(source->config())).with_context("--kv"));
  }
  if (!f.save_path.empty()) {
    LB_RETURN_IF_ERROR(save_kv_config(f.save_path, out.spec, out.calibration).with_context("--kv-save"));
  }
  if (verbose) std::fprintf(stderr, "kv: storing %s in the model file (lowbit.kv)\n", out.spec.describe().c_str());
  return kv_config_to_json(out.spec, out.calibration);
}

uint64_t peak_rss_bytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

void add_kv_report(nlohmann::json& report, const ResolvedKv& kv, const ModelConfig& config, double bytes_per_token,
                   uint64_t allocated_bytes) {
  report["kv"] = kv.spec.describe();
  report["kv_origin"] = kv.origin;
  report["kv_average_bits"] = kv.spec.average_bits(config.n_layers);
  report["kv_bytes_per_token"] = bytes_per_token;
  report["kv_bytes_per_token_fp32"] = 2.0 * config.n_layers * config.kv_dim() * sizeof(float);
  report["kv_bytes_allocated"] = allocated_bytes;
  if (!kv.calibration.is_null()) report["kv_calibration"] = kv.calibration;
  report["peak_rss_bytes"] = peak_rss_bytes();
}

}  // namespace lowbit::cli
