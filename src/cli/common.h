// Pieces shared by the CLI subcommands: model loading with the common flags,
// thread set-up and JSON report writing.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "model/loader.h"
#include "model/quantized_linear.h"

namespace lowbit::cli {

// Flags every model-reading subcommand takes.
struct ModelFlags {
  std::string model_path;
  std::string tokenizer_path;
  int threads = 2;
  std::string json_path;
  bool verbose = false;
};

void add_model_flags(CLI::App& app, ModelFlags& flags, bool with_threads);

// A loaded model ready to run.
struct RunnableModel {
  LoadedModel loaded;
  LlamaModel model;
};

// report: when set, receives which runtime kernels the quantized linears took.
Expected<RunnableModel> load_runnable(const std::string& path, const std::string& tokenizer_path,
                                      AttachReport* report = nullptr);

// Sets the BLAS thread count once for this process.
void configure_threads(int threads);

// Writes the report atomically when a path was given.
Status write_json_report(const std::string& path, const nlohmann::json& report);

// Bits per weight of the stored tensors (all tensor bytes · 8 / elements).
double file_bits_per_weight(const FileSummary& summary);

}  // namespace lowbit::cli
