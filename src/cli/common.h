// Pieces shared by the CLI subcommands: model loading with the common flags,
// thread set-up and JSON report writing.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/act_quant_linear.h"
#include "model/llama_model.h"
#include "model/loader.h"
#include "model/quantized_linear.h"
#include "pipeline/quantize_pipeline.h"

namespace lowbit::cli {

// -q,--quiet (alias --no-progress) and --progress, on every subcommand.
struct ProgressFlags {
  bool quiet = false;
  bool force = false;
};
void add_progress_flags(CLI::App& app, ProgressFlags& flags);
// Progress lines when stderr is a terminal or --progress forces them; never under --quiet.
bool show_progress(const ProgressFlags& flags);

// Flags every model-reading subcommand takes.
struct ModelFlags {
  std::string model_path;
  std::string tokenizer_path;
  int threads = 2;
  std::string json_path;
  bool verbose = false;
  bool simulate_act = false;  // --simulate-act
  bool deterministic = false;  // --deterministic (ppl, generate; add_deterministic_flag)
  ProgressFlags progress;
};

void add_model_flags(CLI::App& app, ModelFlags& flags, bool with_threads);
// --deterministic: the forward of model/deterministic.h (bit-identical logits at any
// batch size, thread count and ISA level; slower).
void add_deterministic_flag(CLI::App& app, bool& flag);

// A loaded model ready to run.
struct RunnableModel {
  LoadedModel loaded;
  LlamaModel model;
  std::string act_kernels;  // what the act specs run on ("w8a8/amx+avx512vnni x210"), "" without act specs
};

// How quantized activations run: the integer kernels where one is exact for the
// act spec (default) or always the simulation; verbose: print the choice (stderr).
// llamacpp_arith: compute every linear whose weight is stored in a GGUF type as
// llama.cpp's CPU backend does (ModelSource::linear_ggml_storage,
// model/llamacpp_linear.h); refused for a model with its own activation
// quantizers or an online rotation, which llama.cpp cannot run.
struct ActRuntime {
  bool simulate = false;
  bool verbose = false;
  bool llamacpp_arith = false;
  bool deterministic = false;  // make_deterministic (model/deterministic.h) after everything else
};
inline ActRuntime act_runtime(const ModelFlags& f) { return {f.simulate_act, f.verbose, false, f.deterministic}; }

// report: when set, receives which runtime kernels the quantized linears took.
Expected<RunnableModel> load_runnable(const std::string& path, const std::string& tokenizer_path,
                                      AttachReport* report = nullptr, ActRuntime act = {});

// "w8a8/avx512vnni x42, simulated (act int4 token: ...) x7" (empty without act quantizers).
std::string act_kernels_line(const ActAttachReport& r);

// Sets the BLAS thread count once for this process.
void configure_threads(int threads);

// "FLAG PATH: why" when a file cannot be written at `path` (core
// check_output_file_path); ok for an empty path (flag not given). Commands call
// it for every output before any long work.
Status check_output_file(const char* flag, const std::string& path);

// The calibration shape for `config` (pipeline calibration_defaults: 0 fields
// scale with the model), printed in one line on stderr unless `quiet`.
CalibrationOptions announce_calibration(const ModelConfig& config, const CalibrationOptions& options,
                                        const std::string& path, bool quiet);

// Writes the report atomically when a path was given.
Status write_json_report(const std::string& path, const nlohmann::json& report);

// Bits per weight of the stored tensors (all tensor bytes · 8 / elements).
double file_bits_per_weight(const FileSummary& summary);

}  // namespace lowbit::cli
