#include "cli/common.h"

#include <cblas.h>
#include <unistd.h>

#include "core/atomic_file_writer.h"
#include "core/mapped_file.h"
#include "kernels/fixed_order.h"
#include "model/act_quant_linear.h"
#include "model/deterministic.h"
#include "model/llamacpp_linear.h"
#include "model/online_hadamard_linear.h"
#include "model/quantized_linear.h"
#include "model/runtime_model.h"
#include "io/untrusted_json.h"

namespace lowbit::cli {

void add_progress_flags(CLI::App& app, ProgressFlags& flags) {
  app.add_flag("-q,--quiet,--no-progress", flags.quiet, "Print no progress lines");
  app.add_flag("--progress", flags.force, "Print progress lines even when stderr is not a terminal (one per 10 %)");
}

bool show_progress(const ProgressFlags& flags) {
  return !flags.quiet && (flags.force || isatty(STDERR_FILENO) != 0);
}

void add_model_flags(CLI::App& app, ModelFlags& flags, bool with_threads) {
  app.add_option("model", flags.model_path, "Model: .gguf file, Hugging Face folder or llama2.c .bin")->required();
  app.add_option("--tokenizer", flags.tokenizer_path,
                 "Tokenizer file: llama2.c tokenizer.bin, tokenizer.json or tokenizer.model")
      ->check(CLI::ExistingFile);
  if (with_threads) {
    app.add_option("-t,--threads", flags.threads, "Threads")->check(CLI::Range(1, 256))->capture_default_str();
  }
  app.add_option("--json", flags.json_path, "Write a JSON report to this file");
  app.add_flag("-v,--verbose", flags.verbose, "Print the resolved configuration");
  app.add_flag("--simulate-act", flags.simulate_act,
               "Quantized activations: always fake-quantize + FP32 product, even where an integer kernel is exact");
  add_progress_flags(app, flags.progress);
}

void add_deterministic_flag(CLI::App& app, bool& flag) {
  app.add_flag("--deterministic", flag,
               "Fixed reduction orders (FP32 weights or weight-only quantized, FP32 KV cache): logits bit-identical at "
               "any batch size, thread count and LOWBIT_ISA level; slower");
}

std::string act_kernels_line(const ActAttachReport& r) {
  std::string s;
  for (const auto& [name, n] : r.integer) s += fmt::format("{}{} x{}", s.empty() ? "" : ", ", name, n);
  for (const auto& [why, n] : r.simulated) s += fmt::format("{}simulated ({}) x{}", s.empty() ? "" : ", ", why, n);
  return s;
}

Expected<RunnableModel> load_runnable(const std::string& path, const std::string& tokenizer_path,
                                      AttachReport* report, ActRuntime act) {
  LoadOptions options;
  options.tokenizer_path = tokenizer_path;
  LB_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model_source(path, options));
  LB_ASSIGN_OR_RETURN(LoadedModel loaded, read_model_info(*source));
  if (loaded.tokenizer == nullptr) {
    return make_error("{}: no tokenizer (a llama2.c model needs --tokenizer tokenizer.bin)", path);
  }
  std::map<std::string, LinearGgmlStorage> ggml_storage;
  if (act.llamacpp_arith) {
    if (!loaded.act_quantizers.empty()) {
      return make_error("{}: --arith llamacpp: the model quantizes its own activations, which llama.cpp cannot run",
                        path);
    }
    if (loaded.rotation && loaded.rotation->online_down) {
      return make_error("{}: --arith llamacpp: the model needs an online Hadamard transform, which llama.cpp "
                        "cannot run", path);
    }
    LB_ASSIGN_OR_RETURN(ggml_storage, source->linear_ggml_storage());
  }
  // Packed straight from the stored tensors where the file keeps them (model/runtime_model.h).
  LB_ASSIGN_OR_RETURN(LlamaModel model, build_runtime_model(*source, {}, report));
  source.reset();  // unmaps the file
  // Around the weights (dense, quantized or packed); an online rotation goes outside these.
  ActAttachOptions act_options;
  act_options.integer_kernels = !act.simulate;
  ActAttachReport act_report;
  LB_RETURN_IF_ERROR(attach_act_quantizers(model, loaded.act_quantizers, act_options, &act_report).with_context(path));
  if (act.verbose && !loaded.act_quantizers.empty()) {
    std::fprintf(stderr, "activations (isa %s): %s\n", isa_name(act_options.isa),
                 act_kernels_line(act_report).c_str());
  }
  if (act.llamacpp_arith) {
    LlamaCppArithReport arith;
    LB_RETURN_IF_ERROR(attach_llamacpp_arith(model, ggml_storage, &arith).with_context(path));
    if (act.verbose) {
      std::string line;
      for (const auto& [kind, n] : arith) line += fmt::format("{}{} x{}", line.empty() ? "" : ", ", kind, n);
      std::fprintf(stderr, "arith llamacpp: linears (weight x activation type) %s\n", line.c_str());
    }
  }
  // Outermost: the online Hadamard transform of a rotated model's down_proj input.
  if (loaded.rotation) LB_RETURN_IF_ERROR(attach_online_rotations(model, *loaded.rotation).with_context(path));
  if (act.deterministic) {
    LB_RETURN_IF_ERROR(make_deterministic(model, active_isa()).with_context(path + ": --deterministic"));
    if (act.verbose) {
      std::fprintf(stderr, "deterministic: linears and attention %s\n", fixed_order_kernels(active_isa()).name);
    }
  }
  return RunnableModel{std::move(loaded), std::move(model), act_kernels_line(act_report)};
}

void configure_threads(int threads) { openblas_set_num_threads(threads); }

Status check_output_file(const char* flag, const std::string& path) {
  if (path.empty()) return Status::ok_status();
  return check_output_file_path(path).with_context(fmt::format("{} {}", flag, path));
}

CalibrationOptions announce_calibration(const ModelConfig& config, const CalibrationOptions& options,
                                        const std::string& path, bool quiet) {
  const CalibrationDefaults calibration = calibration_defaults(config, options);
  if (!quiet) {
    std::fprintf(stderr, "calibration: %s from %s\n", describe_calibration(calibration, config).c_str(), path.c_str());
  }
  return calibration.options;
}

Status write_json_report(const std::string& path, const nlohmann::json& report) {
  if (path.empty()) return Status::ok_status();
  return write_file_atomic(path, dump_json(report, 2) + "\n");
}

double file_bits_per_weight(const FileSummary& summary) {
  uint64_t bytes = 0;
  uint64_t elements = 0;
  for (const StoredTensor& t : summary.tensors) {
    bytes += t.n_bytes;
    uint64_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    elements += n;
  }
  return elements > 0 ? 8.0 * static_cast<double>(bytes) / static_cast<double>(elements) : 0.0;
}

}  // namespace lowbit::cli
