#include "pipeline/quantize_pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/progress.h"
#include "eval/bench.h"
#include "io/gguf.h"
#include "model/ops.h"
#include "pipeline/calibration_shards.h"
#include "pipeline/layer_runner.h"
#include "pipeline/linear_quantizer.h"
#include "pipeline/quantize_checkpoint.h"
#include "pipeline/rotation.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

const char* bos_name(CalibrationBos b) {
  switch (b) {
    case CalibrationBos::kNone: return "none";
    case CalibrationBos::kFirstToken: return "first_token";
    case CalibrationBos::kDocumentStart: return "document_start";
  }
  return "?";
}

uint64_t layer_params(const ModelConfig& c) {
  return 2ull * c.dim + 2ull * c.q_dim() * c.dim + 2ull * c.kv_dim() * c.dim + 3ull * c.ffn_dim * c.dim;
}

void log_module(const ModuleReport& m) {
  std::string out_err = m.output_rel_error ? fmt::format("{:.3e}", *m.output_rel_error) : std::string("-");
  std::string migration;
  if (!m.migration.empty()) {
    migration = fmt::format("  {} {} {:.3g}", m.migration, m.migration == "osp" ? "t" : "alpha", *m.migration_parameter);
    if (m.migration_error) migration += fmt::format(" (E {:.3e} -> {:.3e})", *m.migration_error_plain, *m.migration_error);
  }
  const std::string fallback = m.fallback_from.empty() ? "" : fmt::format("  (fallback from {})", m.fallback_from);
  std::fprintf(stderr, "  %-22s %-9s %-15s %7.3f bpw  weight err %.3e  output err %s%s%s%s  %.2f s\n", m.name.c_str(),
               m.method.c_str(), m.format.c_str(), m.bits_per_weight, m.weight_rel_error, out_err.c_str(),
               m.awq_alpha ? fmt::format("  alpha {:.2f}", *m.awq_alpha).c_str() : "", migration.c_str(),
               fallback.c_str(), m.seconds);
}

// A tensor outside the decoder layers (token_embedding, lm_head); hessian: the head's input H
// when its rule weights RTN by importance, else null. writer: null on ranks that write nothing.
Expected<ModuleReport> quantize_table(const Recipe& recipe, const std::string& name, const std::vector<float>& data,
                                      int64_t rows, int64_t cols, LowbitFileWriter* writer,
                                      const std::vector<double>* hessian = nullptr) {
  const auto start = std::chrono::steady_clock::now();
  LB_ASSIGN_OR_RETURN(const QuantRule* rule, recipe.rule_for(name));
  LB_ASSIGN_OR_RETURN(LinearQuantResult r, quantize_linear(*rule, name, data.data(), rows, cols, hessian));
  if (writer != nullptr) LB_RETURN_IF_ERROR(writer->add(name, {rows, cols}, r.weight, quant_method_name(r.method)));
  ModuleReport m;
  m.name = name;
  m.method = quant_method_name(r.method);
  m.format = r.weight.format;
  m.fallback_from = r.fallback_from;
  m.output_rel_error = r.output_rel_error;
  m.rows = rows;
  m.cols = cols;
  m.stored_bytes = r.weight.storage_bytes();
  m.bits_per_weight = r.weight.bits_per_weight();
  m.weight_rel_error = r.weight_rel_error;
  m.outliers = r.weight.outliers.size();
  m.lorc_rank = r.weight.rank;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return m;
}

// The source's GGUF header, whose tokenizer.* keys the output copies; null for other sources.
Expected<std::unique_ptr<GgufFile>> tokenizer_header(const ModelSource& source) {
  const std::string& format = source.summary().format;
  if (format != "gguf" && format != "lowbit") return std::unique_ptr<GgufFile>();
  LB_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(source.path()));
  return std::make_unique<GgufFile>(std::move(gguf));
}

}  // namespace

Expected<std::vector<double>> head_input_hessian(const std::vector<float>& hidden, const ModelConfig& c,
                                                 const std::vector<float>& output_norm, HessianPrecision precision,
                                                 const std::vector<int64_t>& shard_starts, Communicator* comm) {
  ActivationStats stats({.hessian = precision, .names = {"lm_head"}}, shard_starts);
  const int64_t tokens = static_cast<int64_t>(hidden.size()) / c.dim;
  constexpr int64_t kChunk = 256;
  std::vector<float> normed(static_cast<size_t>(kChunk * c.dim));  // [chunk, dim]
  std::vector<int64_t> ends = shard_starts;  // chunks restart at each shard, as on a rank
  ends.push_back(tokens);
  for (int64_t t0 = 0, e = 0; t0 < tokens; ++e) {
    for (; t0 < ends[e]; t0 += kChunk) {
      const int64_t n = std::min(kChunk, ends[e] - t0);
      for (int64_t t = 0; t < n; ++t) {
        rms_norm(hidden.data() + (t0 + t) * c.dim, output_norm.data(), c.dim, c.norm_eps, normed.data() + t * c.dim);
      }
      stats.observe("lm_head", normed.data(), n, c.dim);
    }
    t0 = ends[e];
  }
  SingleProcess single;
  LB_RETURN_IF_ERROR(stats.reduce(comm != nullptr ? *comm : single));
  const InputStats* s = stats.find("lm_head");
  if (s == nullptr) return make_error("lm_head: no calibration states for its importance");
  return s->hessian();
}

int default_calibration_length(const ModelConfig& config) { return std::min(2048, config.max_seq_len); }

namespace {
constexpr int kTokensPerColumn = 32;
constexpr int kMinWindows = 8;
constexpr int kMaxWindows = 128;
}  // namespace

CalibrationDefaults calibration_defaults(const ModelConfig& config, const CalibrationOptions& options) {
  CalibrationDefaults d;
  d.options = options;
  d.widest_input = std::max({config.dim, config.q_dim(), config.ffn_dim});
  d.auto_len = options.seq_len == 0;
  d.auto_samples = options.n_samples == 0;
  if (d.auto_len) d.options.seq_len = default_calibration_length(config);
  if (d.auto_samples) {
    const int64_t tokens = static_cast<int64_t>(kTokensPerColumn) * d.widest_input;
    const int64_t len = std::max(1, d.options.seq_len);
    d.options.n_samples = static_cast<int>(std::clamp<int64_t>((tokens + len - 1) / len, kMinWindows, kMaxWindows));
  }
  return d;
}

std::string describe_calibration(const CalibrationDefaults& d, const ModelConfig& config) {
  const CalibrationOptions& o = d.options;
  std::string why;
  if (d.auto_samples) {
    why = fmt::format("windows: {} x {} columns of the widest linear input, {} to {} windows", kTokensPerColumn,
                      d.widest_input, kMinWindows, kMaxWindows);
  } else {
    why = "windows: --calib-samples";
  }
  if (d.auto_len) {
    why += config.max_seq_len <= 2048 ? fmt::format("; length: the model's context {}", config.max_seq_len)
                                      : fmt::format("; length: 2048 of the model's context {}", config.max_seq_len);
  } else {
    why += "; length: --calib-len";
  }
  return fmt::format("{} windows x {} tokens = {} tokens ({})", o.n_samples, o.seq_len,
                     static_cast<int64_t>(o.n_samples) * o.seq_len, why);
}

uint64_t memory_bound(const ModelConfig& c, int n_samples, int seq_len, int threads, bool bf16_products) {
  return quantize_memory_bound(c, n_samples, seq_len, threads, bf16_products).total();
}

Expected<CalibrationSet> pipeline_calibration(const ModelSource& source, const PipelineOptions& o,
                                              bool true_sequential, json* description) {
  const ModelConfig& config = source.config();
  CalibrationOptions co = calibration_defaults(config, o.calibration).options;
  if (co.seq_len > config.max_seq_len) {
    return make_error("--calib-len {}: longer than the model's context ({})", co.seq_len, config.max_seq_len);
  }
  LB_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, source.tokenizer());
  if (tokenizer == nullptr) {
    return make_error("{}: no tokenizer to read the calibration text (--tokenizer)", o.model_path);
  }
  if (o.auto_bos) {
    co.bos = tokenizer->add_bos() && tokenizer->bos_id() >= 0 ? CalibrationBos::kDocumentStart : CalibrationBos::kNone;
  }
  LB_ASSIGN_OR_RETURN(CalibrationSet calibration, load_calibration(o.calib_path, *tokenizer, co));
  if (description != nullptr) {
    *description = {{"path", o.calib_path},
                    {"n_samples", co.n_samples},
                    {"seq_len", co.seq_len},
                    {"seed", co.seed},
                    {"bos", bos_name(co.bos)},
                    {"hessian", hessian_precision_name(o.hessian)},
                    {"true_sequential", true_sequential}};
    // Recorded only when not FP32, so FP32 runs write the bytes they always did.
    if (o.arithmetic == CalibArithmetic::kBf16) (*description)["arithmetic"] = "bf16";
  }
  return calibration;
}

Expected<QuantizeReport> quantize_model(const Recipe& recipe, const PipelineOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  std::error_code ec;
  if (std::filesystem::exists(o.output_path, ec) && std::filesystem::equivalent(o.output_path, o.model_path, ec)) {
    return make_error("-o {}: the output would replace the model being quantized", o.output_path);
  }
  LB_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model_source(o.model_path, o.load));
  const ModelConfig& config = source->config();
  const bool calibrate = !o.calib_path.empty();
  LB_ASSIGN_OR_RETURN(const bool needs_calibration, recipe.needs_calibration(config));
  if (!calibrate && needs_calibration) {
    return make_error("recipe {} needs calibration data (gptq, awq or rtn with importance): pass --calib FILE",
                      recipe.name);
  }

  // Calibration windows (tokens only; hidden states come after the embedding is read).
  CalibrationSet calibration;
  json calibration_json = json::object();
  SingleProcess single;
  Communicator& comm = o.comm != nullptr ? *o.comm : single;
  CalibrationShards shards;
  if (calibrate) {
    LB_ASSIGN_OR_RETURN(calibration, pipeline_calibration(*source, o, recipe.true_sequential, &calibration_json));
    // Every rank reads the same windows and keeps its shard (docs/MPI.md).
    LB_ASSIGN_OR_RETURN(shards, plan_calibration_shards(calibration.n_samples(), calibration.seq_len,
                                                        o.calib_shards, comm));
    if (shards.count > 1) calibration_json["shards"] = shards.count;
    if (comm.size() > 1) calibration = keep_windows(calibration, shards.begin, shards.end);
  }
  const bool writes = comm.rank() == 0;  // other ranks write nothing, not even a temporary file

  // QuaRot rotation (pipeline/rotation.h): each piece is rotated as it is read, before
  // any other step; a tied head becomes a separate lm_head.
  std::optional<ModelRotations> rotations;
  if (recipe.rotation) {
    rotations = ModelRotations::create(config, *recipe.rotation);
    if (writes) {
      for (const std::string& note : rotations->notes()) std::fprintf(stderr, "note: rotation: %s\n", note.c_str());
    }
  }

  // Resumable runs: a checkpoint after every layer; --resume restores the last one.
  std::optional<QuantizeCheckpointer> checkpoints;
  std::optional<QuantizeCheckpointData> resumed;
  if (o.resume && !o.checkpoint) return make_error("--resume needs checkpoints (not --no-checkpoint)");
  if (o.checkpoint && o.transform_layer) {
    return make_error("quantize: a layer transform is not recorded in checkpoints: run it with checkpoint = false");
  }
  // Under mpirun each rank holds other calibration states: checkpoints are a one-process feature.
  if (o.resume && comm.size() > 1) {
    return make_error("--resume: not under mpirun (only a single-process run writes checkpoints)");
  }
  if (o.checkpoint && comm.size() == 1) {
    checkpoints.emplace(o.output_path, run_fingerprint(recipe, o, calibration_json), config.n_layers, o.test_hook);
    const size_t hidden_floats = calibrate ? calibration.tokens.size() * static_cast<size_t>(config.dim) : 0;
    LB_ASSIGN_OR_RETURN(resumed, checkpoints->start(o.resume, hidden_floats));
  }

  LowbitFileInfo info;
  info.config = config;
  if (rotations) {
    info.config.tied_embeddings = false;
    info.rotation = rotation_spec_to_json(*recipe.rotation);
    info.rotation["transforms"] = rotations->describe();
  }
  info.recipe = recipe.json;
  info.calibration = calibration_json;
  info.source = {{"path", o.model_path}, {"format", source->summary().format}};
  info.kv = o.kv;
  std::optional<LowbitFileWriter> file;
  if (writes) {
    LB_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> tokenizer_gguf, tokenizer_header(*source));
    LB_ASSIGN_OR_RETURN(LowbitFileWriter opened, resumed ? LowbitFileWriter::reopen(o.output_path, resumed->writer)
                                                         : LowbitFileWriter::create(o.output_path, info,
                                                                                    tokenizer_gguf.get()));
    file.emplace(std::move(opened));
  }
  LowbitFileWriter* writer = file ? &*file : nullptr;

  QuantizeReport report;
  report.output_path = o.output_path;
  report.calibration = calibration_json;
  report.rotation = info.rotation;

  // Embedding: stored, then used once to embed the calibration tokens, then freed.
  std::vector<float> hidden;  // [n_samples, seq_len, dim]
  // A checkpoint's thread reads `hidden`: on every path out of here (errors included)
  // it is joined before `hidden` is destroyed (declared after it, destroyed first).
  struct JoinCheckpoint {
    std::optional<QuantizeCheckpointer>& checkpoints;
    ~JoinCheckpoint() {
      if (checkpoints) (void)checkpoints->finish_save();
    }
  } join_checkpoint{checkpoints};
  const int first_layer = resumed ? resumed->layers_done : 0;
  if (resumed) {  // the embedding and layers [0, first_layer) are in the file; states after them restored
    hidden = std::move(resumed->hidden);
    report.modules = std::move(resumed->modules);
    report.linear_params = resumed->linear_params;
    report.linear_bytes = resumed->linear_bytes;
  } else {
    LB_ASSIGN_OR_RETURN(std::vector<float> embedding, source->token_embedding());  // [vocab, dim]
    if (rotations) rotate_embedding(embedding, *rotations);  // so the calibration states are rotated too
    LB_ASSIGN_OR_RETURN(ModuleReport m,
                        quantize_table(recipe, "token_embedding", embedding, config.vocab_size, config.dim, writer));
    report.modules.push_back(std::move(m));
    if (calibrate) {
      LB_ASSIGN_OR_RETURN(hidden, embed_tokens(embedding, config, calibration.tokens.data(),
                                               static_cast<int64_t>(calibration.tokens.size())));
    }
  }
  LB_ASSIGN_OR_RETURN(std::vector<float> rope_freq_factors, source->rope_freq_factors());

  ThreadPool pool(o.threads);
  std::optional<LayerRunner> runner;
  if (calibrate) runner.emplace(config, calibration.seq_len);
  // Weighted by parameters: a layer's FFN projections cost more than its k_proj.
  const int64_t linear_params = static_cast<int64_t>(config.n_layers) * (layer_params(config) - 2ll * config.dim);
  ProgressBar progress("quantize", linear_params, o.progress && writes, ProgressUnits::kPercent);
  int64_t params_done = first_layer * (layer_params(config) - 2ll * config.dim);  // linears finished
  int64_t params_started = params_done;                                         // ... and the one in progress
  int64_t modules_started = 0;  // linears this process began (the test hook's count)
  int current_layer = 0;
  LayerQuantizerContext ctx;
  ctx.config = &config;
  ctx.recipe = &recipe;
  ctx.rope_freq_factors = &rope_freq_factors;
  ctx.pool = &pool;
  ctx.hessian = o.hessian;
  ctx.arithmetic = o.arithmetic;
  if (calibrate) {
    ctx.calibration = CalibrationState{&*runner, calibration.n_samples(), hidden.data()};
    ctx.shards = &shards;
  }
  ctx.comm = &comm;
  ctx.writer = writer;
  if (rotations && rotations->down) ctx.online_down = &*rotations->down;
  // The checkpoint of the previous layer is written on its own thread while this layer's
  // statistics pass runs (QuantizeCheckpointer::begin_save); it is joined before the
  // layer's first linear and before its hidden states are updated. Its error, if any,
  // is kept here and returned once the layer ends.
  Status checkpoint_status;
  auto finish_checkpoint = [&] {
    if (!checkpoints || !checkpoints->saving()) return;
    const int layers_done = checkpoints->saving_layers();
    Status st = checkpoints->finish_save();
    if (!st.ok()) {
      if (checkpoint_status.ok()) checkpoint_status = std::move(st);
    } else if (o.test_hook) {
      o.test_hook("checkpoint", layers_done);
    }
  };
  ctx.before_states_update = finish_checkpoint;
  // An lm_head weighted by importance reads the states after the last layer (its H).
  LB_ASSIGN_OR_RETURN(const QuantRule* head_rule, recipe.rule_for("lm_head"));
  const bool head_importance = recipe.stores_lm_head(config) && head_rule->options.importance;
  ctx.last_layer_states_needed = head_importance;
  ctx.on_module = [&](const std::string& name, int64_t params) {
    finish_checkpoint();
    params_done = params_started;
    params_started += params;
    if (o.test_hook) o.test_hook("module", modules_started++);
    progress.update(params_done, fmt::format("layer {}/{}  {}", current_layer + 1, config.n_layers, name));
  };
  for (int i = first_layer; i < config.n_layers; ++i) {
    current_layer = i;
    LB_ASSIGN_OR_RETURN(LayerWeights w, source->layer(i));
    if (o.transform_layer) LB_RETURN_IF_ERROR(o.transform_layer(i, w).with_context(fmt::format("layers.{}", i)));
    if (rotations) LB_RETURN_IF_ERROR(rotate_layer(w, config, *rotations).with_context(fmt::format("layers.{}", i)));
    LB_ASSIGN_OR_RETURN(std::vector<ModuleReport> modules, quantize_layer(ctx, i, std::move(w)));
    for (ModuleReport& m : modules) {
      if (o.verbose && writes) log_module(m);
      report.linear_params += static_cast<uint64_t>(m.rows * m.cols);
      report.linear_bytes += m.stored_bytes;
      report.modules.push_back(std::move(m));
    }
    if (checkpoints) {
      finish_checkpoint();
      LB_RETURN_IF_ERROR(checkpoint_status);
      const std::vector<int64_t> shape = calibrate ? std::vector<int64_t>{calibration.n_samples(), calibration.seq_len,
                                                                          config.dim}
                                                   : std::vector<int64_t>{};
      LB_RETURN_IF_ERROR(checkpoints->begin_save(i + 1, *writer, report, hidden, shape));  // one process: writer set
    }
  }
  finish_checkpoint();
  LB_RETURN_IF_ERROR(checkpoint_status);
  progress.update(linear_params);
  progress.finish();

  LB_ASSIGN_OR_RETURN(std::vector<float> output_norm, source->output_norm());
  Matrix lm_head;  // rotated: head·diag(output_norm)·Q (output_norm becomes 1), the tied embedding re-read
  if (rotations) {
    std::vector<float> head;  // [vocab, dim]
    if (config.tied_embeddings) {
      LB_ASSIGN_OR_RETURN(head, source->token_embedding());
    } else {
      LB_ASSIGN_OR_RETURN(Matrix untied, source->lm_head());
      head = std::move(untied.data);
    }
    lm_head = rotate_lm_head(head, config, output_norm, *rotations);
  }
  if (writes) LB_RETURN_IF_ERROR(writer->add_fp32("output_norm", {config.dim}, output_norm.data()));
  std::vector<double> head_h;  // [dim, dim], only for a head weighted by importance
  if (calibrate && head_importance) {
    LB_ASSIGN_OR_RETURN(head_h, head_input_hessian(hidden, config, output_norm, o.hessian, shards.shard_starts, &comm));
  }
  hidden = std::vector<float>();
  if (!info.config.tied_embeddings) {
    if (!rotations) {
      LB_ASSIGN_OR_RETURN(lm_head, source->lm_head());
    }
    LB_ASSIGN_OR_RETURN(ModuleReport m, quantize_table(recipe, "lm_head", lm_head.data, config.vocab_size, config.dim,
                                                       writer, head_h.empty() ? nullptr : &head_h));
    if (o.verbose && writes) log_module(m);
    report.modules.push_back(std::move(m));
  }
  if (writes) {
    if (!rope_freq_factors.empty()) {
      LB_RETURN_IF_ERROR(writer->add_fp32("rope_freqs", {config.head_dim / 2}, rope_freq_factors.data()));
    }
    LB_RETURN_IF_ERROR(writer->finish());
    report.file_bytes = std::filesystem::file_size(o.output_path, ec);
  }
  if (checkpoints && o.verbose) {
    std::fprintf(stderr, "checkpoints: %d written, %.1f MB, %.2f s\n", checkpoints->saves(),
                 static_cast<double>(checkpoints->saved_bytes()) / 1e6, checkpoints->save_seconds());
  }
  checkpoints.reset();  // the output is in place: the checkpoint goes, and with it the interrupt note
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.peak_rss_bytes = peak_rss_bytes();
  report.memory_bound_bytes = memory_bound(info.config, calibrate ? calibration.n_samples() : 0, calibration.seq_len,
                                           o.threads, o.arithmetic == CalibArithmetic::kBf16);
  return report;
}

json report_json(const QuantizeReport& r) {
  json modules = json::array();
  for (const ModuleReport& m : r.modules) {
    json j = {{"name", m.name},
              {"method", m.method},
              {"format", m.format},
              {"shape", {m.rows, m.cols}},
              {"bits_per_weight", m.bits_per_weight},
              {"stored_bytes", m.stored_bytes},
              {"weight_rel_error", m.weight_rel_error},
              {"output_rel_error", m.output_rel_error ? json(*m.output_rel_error) : json(nullptr)},
              {"seconds", m.seconds}};
    if (m.awq_alpha) j["awq_alpha"] = *m.awq_alpha;
    if (!m.fallback_from.empty()) j["fallback_from"] = m.fallback_from;
    if (!m.migration.empty()) {
      j["migration"] = {{"method", m.migration}, {"parameter", *m.migration_parameter}};
      if (m.migration_error) {
        j["migration"]["error_plain"] = *m.migration_error_plain;
        j["migration"]["error"] = *m.migration_error;
      }
    }
    if (m.dead_columns > 0) j["dead_columns"] = m.dead_columns;
    if (m.outliers > 0) j["outliers"] = m.outliers;
    if (m.lorc_rank > 0) j["lorc_rank"] = m.lorc_rank;
    if (m.adaquant_codes_changed > 0 || m.adaquant_scales_changed > 0) {
      j["adaquant"] = {{"codes_changed", m.adaquant_codes_changed}, {"scales_changed", m.adaquant_scales_changed}};
    }
    if (m.bias_corrected) j["bias_correction"] = true;
    modules.push_back(std::move(j));
  }
  json fallbacks = json::array();  // the tensors stored in a rule's fallback format
  for (const ModuleReport& m : r.modules) {
    if (!m.fallback_from.empty()) fallbacks.push_back({{"name", m.name}, {"from", m.fallback_from}, {"to", m.format}});
  }
  return {{"output", r.output_path},
          {"calibration", r.calibration},
          {"fallbacks", fallbacks},
          {"rotation", r.rotation},
          {"modules", modules},
          {"linear_bits_per_weight", r.linear_bits_per_weight()},
          {"file_bytes", r.file_bytes},
          {"seconds", r.seconds},
          {"peak_rss_bytes", r.peak_rss_bytes},
          {"memory_bound_bytes", r.memory_bound_bytes}};
}

}  // namespace lowbit
