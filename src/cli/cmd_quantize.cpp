// `lowbit quantize MODEL --recipe NAME|FILE [--calib FILE] [--calib-samples N] [--calib-len L] [--seed S]
//                  [--threads T] [--kv SPEC|FILE [--kv-calib F] [--kv-tune BITS] [--kv-save F]] -o OUT [--json F]
//                  [--resume | --no-checkpoint]`
// --resume continues a killed run from OUT.ckpt (pipeline/quantize_checkpoint.h).
// LOWBIT_TEST_KILL_AT=checkpoint:N|checkpoint_write:N|module:N (test-only) raises SIGKILL
// after the checkpoint of N layers, before that checkpoint is renamed into place, or
// before the N-th linear (0-based) this process quantizes.
// --kv stores a KV-cache configuration in the file (lowbit.kv) that ppl/generate use when run without --kv.
// `lowbit quantize MODEL --target-size MB | --target-bpw B [--menu NAME|FILE] [--sensitivity MODE] --calib F -o OUT
//                  [--recipe-out F] [--sensitivity-out F]`: per-tensor formats chosen for a size budget
// (pipeline/size_budget.h), then quantized as the written recipe says.
// `lowbit quantize --list-recipes [--verbose]`
// `mpirun -np N lowbit quantize MODEL --recipe ...`: the calibration windows sharded across N processes, rank 0
// writes (docs/MPI.md); `--calib-shards N` in one process sums the statistics as N ranks do (same file).
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>

#include "core/communicator.h"
#include "core/mapped_file.h"

#include "cli/commands.h"
#include "cli/kv_cli.h"
#include "kernels/cpu_features.h"
#include "pipeline/quantize_pipeline.h"
#include "pipeline/recipe.h"
#include "pipeline/size_budget.h"
#include "io/untrusted_json.h"

namespace lowbit::cli {
namespace {

struct QuantizeFlags {
  std::string model_path;
  std::string tokenizer_path;
  std::string recipe;
  std::string calib_path;
  int calib_samples = 0;  // 0: calibration_defaults (pipeline/quantize_pipeline.h)
  int calib_len = 0;
  int calib_shards = 0;  // 0: the number of MPI ranks (1 in one process)
  uint64_t seed = 0;
  std::string calib_bos = "auto";
  std::string hessian;  // "": fp64, or bf16 under --calib-arith bf16
  std::string calib_arith = "fp32";
  int threads = 2;
  std::string output_path;
  std::string json_path;
  bool list_recipes = false;
  ProgressFlags progress;
  bool verbose = false;
  KvFlags kv;
  // Size budget (instead of --recipe).
  std::optional<double> target_mb;
  std::optional<double> target_bpw;
  std::string menu = "gguf";
  std::string sensitivity = "hutchinson";
  int probes = 2;
  std::string recipe_out;
  std::string sensitivity_out;
  std::string sensitivity_in;
  bool resume = false;
  bool no_checkpoint = false;
};

constexpr const char* kDefaultCalibration = "data/c4/c4_validation_2k.jsonl";

// The shared folder: LOWBIT_SHARED_DIR, else ../shared beside the working directory.
std::string default_calibration_path() {
  const char* env = std::getenv("LOWBIT_SHARED_DIR");
  const std::filesystem::path dir = env != nullptr && *env != '\0' ? env : "../shared";
  return (dir / kDefaultCalibration).string();
}

// The binary for the checkpoint fingerprint: a rebuilt lowbit may quantize
// differently, so a resume with another binary is refused ("" when unknown).
std::string build_id() {
  struct stat st {};
  if (::stat("/proc/self/exe", &st) != 0) return "";
  return fmt::format("lowbit executable {} bytes, mtime {}.{:09d}", st.st_size, st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec);
}

// LOWBIT_TEST_KILL_AT=POINT:N (test-only, docs/TESTING.md): the process raises
// SIGKILL on itself at that point of the pipeline (PipelineOptions::test_hook).
Expected<std::function<void(const std::string&, int64_t)>> test_kill_hook() {
  const char* env = std::getenv("LOWBIT_TEST_KILL_AT");
  if (env == nullptr || *env == '\0') return std::function<void(const std::string&, int64_t)>();
  const std::string spec = env;
  const size_t colon = spec.find(':');
  const std::string point = spec.substr(0, colon);
  char* end = nullptr;
  const long long n = colon == std::string::npos ? -1 : std::strtoll(spec.c_str() + colon + 1, &end, 10);
  if ((point != "checkpoint" && point != "checkpoint_write" && point != "module") || n < 0 || end == nullptr ||
      *end != '\0') {
    return make_error("LOWBIT_TEST_KILL_AT={}: expected checkpoint:N, checkpoint_write:N or module:N", spec);
  }
  return std::function<void(const std::string&, int64_t)>([point, n](const std::string& at, int64_t i) {
    if (at == point && i == n) raise(SIGKILL);
  });
}

Status run_list(bool verbose) {
  const ModelConfig ref = smollm2_135m_config();
  std::printf(
      "Built-in recipes (--recipe NAME). Bits per weight on SmolLM2-135M shapes: over the decoder linears, "
      "and over every stored parameter (FP16 embedding, FP32 norms); act = bits per linear input activation "
      "(scales included, 32 = FP32); calib = needs calibration data.\n");
  std::printf("  %-22s %8s %8s %9s %6s  %-5s  %s\n", "name", "linears", "model", "size MB", "act", "calib",
              "description");
  for (const BuiltinRecipe& b : builtin_recipes()) {
    LB_ASSIGN_OR_RETURN(Recipe r, load_recipe(b.name));
    LB_ASSIGN_OR_RETURN(RecipeSize size, recipe_size(r, ref));
    LB_ASSIGN_OR_RETURN(const bool needs_calibration, r.needs_calibration(ref));
    std::printf("  %-22s %8.3f %8.3f %9.1f %6.2f  %-5s  %s\n", b.name, size.linear_bpw, size.model_bpw,
                static_cast<double>(size.model_bytes) / 1e6, size.act_bits, needs_calibration ? "yes" : "no",
                r.description.c_str());
    if (verbose) std::printf("%s\n", dump_json(r.json, 2).c_str());
  }
  std::printf("A recipe file has the same JSON schema (docs/FORMAT.md); --verbose prints each built-in's.\n");
  return Status::ok_status();
}

// What `mpirun` cannot run: the size-budget passes and the KV-cache calibration are single-process.
Status check_mpi_flags(const QuantizeFlags& f, const Communicator& comm) {
  if (comm.size() == 1) return Status::ok_status();
  if (f.target_mb || f.target_bpw) {
    return make_error("--target-size/--target-bpw: the sensitivity pass is not sharded across MPI ranks; run it "
                      "without mpirun, or write its recipe once (--recipe-out) and pass that to --recipe");
  }
  if (!f.kv.calib_path.empty() || f.kv.tune_bits > 0.0 || !f.kv.save_path.empty()) {
    return make_error("--kv-calib/--kv-tune/--kv-save are not run under mpirun: save the KV configuration in one "
                      "process (--kv-save F) and pass --kv F");
  }
  return Status::ok_status();
}

Status run_quantize_on(const QuantizeFlags& f, Communicator& comm) {
  LB_RETURN_IF_ERROR(check_mpi_flags(f, comm));
  const bool rank0 = comm.rank() == 0;  // prints and writes; the other ranks only compute
  if (f.model_path.empty()) return make_error("quantize: MODEL is required (or --list-recipes)");
  const bool budgeted = f.target_mb || f.target_bpw;
  if (budgeted && !f.recipe.empty()) return make_error("quantize: give either --recipe or a size budget, not both");
  if (!budgeted && f.recipe.empty()) {
    return make_error("quantize: --recipe NAME|FILE or --target-size/--target-bpw is required (see --list-recipes)");
  }
  if (f.output_path.empty()) return make_error("quantize: -o OUT is required");
  if (budgeted && f.resume) {
    return make_error("--resume: not with --target-size/--target-bpw (the sensitivity pass is not checkpointed); "
                      "write the allocation with --recipe-out and quantize with --recipe FILE");
  }
  LB_RETURN_IF_ERROR(check_output_file("-o", f.output_path));
  LB_RETURN_IF_ERROR(check_output_file("--json", f.json_path));
  LB_RETURN_IF_ERROR(check_output_file("--recipe-out", f.recipe_out));
  LB_RETURN_IF_ERROR(check_output_file("--sensitivity-out", f.sensitivity_out));
  LB_RETURN_IF_ERROR(check_output_file("--kv-save", f.kv.save_path));
  configure_threads(f.threads);
  std::optional<SizeMenu> menu;
  std::optional<SensitivityMode> mode;
  if (budgeted) {
    LB_ASSIGN_OR_RETURN(menu, load_size_menu(f.menu));
    LB_ASSIGN_OR_RETURN(mode, parse_sensitivity_mode(f.sensitivity));
  }
  Recipe recipe;  // a budget's is written by the allocation below
  if (!budgeted) {
    LB_ASSIGN_OR_RETURN(recipe, load_recipe(f.recipe));
  }

  PipelineOptions o;
  o.model_path = f.model_path;
  o.load.tokenizer_path = f.tokenizer_path;
  o.output_path = f.output_path;
  o.calib_path = f.calib_path;
  o.calibration.n_samples = f.calib_samples;
  o.calibration.seq_len = f.calib_len;
  o.calibration.seed = f.seed;
  o.auto_bos = f.calib_bos == "auto";
  if (f.calib_bos == "first") o.calibration.bos = CalibrationBos::kFirstToken;
  if (f.calib_bos == "document") o.calibration.bos = CalibrationBos::kDocumentStart;
  if (f.calib_arith == "bf16") {
    if (!f.hessian.empty() && f.hessian != "bf16") {
      return make_error("--hessian {}: under --calib-arith bf16 H is bf16 (BF16 products summed in FP32 per window, "
                        "in double across windows)",
                        f.hessian);
    }
    o.arithmetic = CalibArithmetic::kBf16;
    o.hessian = HessianPrecision::kBf16;
    if (!isa_includes(active_isa(), Isa::kAvx512Bf16) && rank0 && !f.progress.quiet) {
      std::fprintf(stderr,
                   "quantize: --calib-arith bf16 at ISA level %s (no AVX512_BF16): the scalar reference products run, "
                   "far slower than fp32\n",
                   isa_name(active_isa()));
    }
  } else if (f.hessian == "bf16") {
    return make_error("--hessian bf16 goes with --calib-arith bf16");
  } else {
    o.hessian = f.hessian == "fp32" ? HessianPrecision::kFp32 : HessianPrecision::kFp64;
  }
  o.threads = f.threads;
  o.progress = show_progress(f.progress);
  o.verbose = f.verbose;
  o.checkpoint = !f.no_checkpoint && !budgeted;
  o.resume = f.resume;
  o.build_id = build_id();
  LB_ASSIGN_OR_RETURN(o.test_hook, test_kill_hook());
  o.comm = &comm;
  o.calib_shards = f.calib_shards;
  {
    ThreadPool pool(f.threads);
    LB_ASSIGN_OR_RETURN(o.kv, kv_config_for_quantize(f.kv, f.model_path, f.tokenizer_path, pool, f.verbose));
  }
  ModelConfig config;  // the source's shape: which layers need calibration, and how much
  {
    LB_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model_source(f.model_path, o.load));
    config = source->config();
  }
  if (o.calib_path.empty()) {
    // Only data-aware recipes read calibration data by default; the model decides (a rule may name one layer).
    LB_ASSIGN_OR_RETURN(const bool needs_calibration, recipe.needs_calibration(config));
    if (budgeted || needs_calibration) {
      const std::string fallback = default_calibration_path();
      if (!std::filesystem::exists(fallback)) {
        return make_error(
            "--calib: recipe {} needs calibration data and the default {} does not exist; pass --calib "
            "FILE (text or JSONL)",
            recipe.name, fallback);
      }
      o.calib_path = fallback;
    }
  }
  if (!o.calib_path.empty()) {
    o.calibration = announce_calibration(config, o.calibration, o.calib_path, f.progress.quiet || !rank0);
  }
  if (f.verbose && rank0) {
    if (comm.size() > 1) std::fprintf(stderr, "quantize: %d MPI ranks, calibration sharded\n", comm.size());
    std::fprintf(stderr,
                 "quantize: %s -> %s, recipe %s (%s), calibration %s (%d x %s tokens, seed %llu, bos %s), hessian %s, "
                 "arithmetic %s, threads %d\n",
                 f.model_path.c_str(), f.output_path.c_str(), recipe.name.c_str(), recipe.source.c_str(),
                 o.calib_path.empty() ? "none" : o.calib_path.c_str(), o.calibration.n_samples,
                 std::to_string(o.calibration.seq_len).c_str(),
                 static_cast<unsigned long long>(f.seed), f.calib_bos.c_str(), hessian_precision_name(o.hessian),
                 f.calib_arith.c_str(), f.threads);
  }
  std::optional<BudgetAllocation> allocation;
  nlohmann::json sensitivity_json;
  if (budgeted) {
    SensitivityOptions so;
    so.mode = *mode;
    so.probes = f.probes;
    so.seed = f.seed;
    LB_ASSIGN_OR_RETURN(SensitivityTable table, sensitivity_table(f.sensitivity_in, *menu, o, so));
    LB_ASSIGN_OR_RETURN(uint64_t budget, budget_bytes(table, f.target_mb, f.target_bpw));
    const std::string name = std::filesystem::path(f.output_path).stem().string();
    LB_ASSIGN_OR_RETURN(allocation, allocate_budget(table, *menu, budget, name));
    std::printf("allocation: %.6f MB of %.6f MB budget, %.4f bits per weight, predicted KLD %.5f%s (sensitivity %s, "
                "%.1f s)\n",
                allocation->bytes / 1e6, budget / 1e6, allocation->bits_per_weight, allocation->predicted_kld,
                allocation->exact ? "" : fmt::format(" (lower bound {:.5f})", allocation->lower_bound).c_str(),
                sensitivity_mode_name(table.mode), table.seconds);
    std::string mix;
    for (const auto& [format, n] : allocation->format_counts) mix += fmt::format(" {} x{}", format, n);
    std::printf("formats:%s\n", mix.c_str());
    std::printf("sensitivity pass: %.1f s, peak RSS %.0f MB (bound %.0f MB, docs/SIZE_BUDGET.md)\n", table.seconds,
                table.peak_rss_bytes / 1e6, table.memory_bound_bytes / 1e6);
    if (!f.sensitivity_out.empty()) LB_RETURN_IF_ERROR(write_file_atomic(f.sensitivity_out, dump_json(table.to_json(), 1)));
    if (!f.recipe_out.empty()) LB_RETURN_IF_ERROR(write_file_atomic(f.recipe_out, dump_json(allocation->recipe, 1) + "\n"));
    LB_ASSIGN_OR_RETURN(recipe, parse_recipe(allocation->recipe, "allocation " + name));
    sensitivity_json = {{"mode", sensitivity_mode_name(table.mode)},
                        {"menu", table.menu},
                        {"seconds", table.seconds},
                        {"budget_bytes", budget},
                        {"bytes", allocation->bytes},
                        {"bits_per_weight", allocation->bits_per_weight},
                        {"predicted_kld", allocation->predicted_kld},
                        {"exact", allocation->exact},
                        {"lower_bound", allocation->lower_bound},
                        {"peak_rss_bytes", table.peak_rss_bytes},
                        {"memory_bound_bytes", table.memory_bound_bytes}};
  }
  LB_ASSIGN_OR_RETURN(QuantizeReport r, quantize_model(recipe, o));
  if (!rank0) return Status::ok_status();
  std::printf("wrote %s: %.2f MB, decoder linears %.3f bits per weight, %.1f s, peak RSS %.0f MB (bound %.0f MB)\n",
              r.output_path.c_str(), static_cast<double>(r.file_bytes) / 1e6, r.linear_bits_per_weight(), r.seconds,
              static_cast<double>(r.peak_rss_bytes) / 1e6, static_cast<double>(r.memory_bound_bytes) / 1e6);
  std::map<std::string, int> fallbacks;  // "q4_K -> q5_0" -> tensors
  for (const ModuleReport& m : r.modules) {
    if (!m.fallback_from.empty()) ++fallbacks[m.fallback_from + " -> " + m.format];
  }
  for (const auto& [change, n] : fallbacks) {
    std::printf("fallback: %d tensors %s (their shape does not fit; names in the JSON report's \"fallbacks\")\n", n,
                change.c_str());
  }
  nlohmann::json report = report_json(r);
  report["model"] = f.model_path;
  report["recipe"] = recipe.name;
  report["recipe_json"] = recipe.json;
  report["threads"] = f.threads;
  if (!o.kv.is_null()) report["kv"] = o.kv;
  if (allocation) report["allocation"] = sensitivity_json;
  if (comm.size() > 1) report["mpi_ranks"] = comm.size();
  return write_json_report(f.json_path, report);
}

Status run_quantize(const QuantizeFlags& f) {
  if (f.list_recipes) return run_list(f.verbose);
  // MPI is initialised here only when mpirun started this process (core/communicator.h).
  LB_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, open_communicator());
  Status status = run_quantize_on(f, *comm);
  if (!status.ok() && comm->size() > 1) {
    // The other ranks may wait in a collective for this one: end the whole job.
    std::fprintf(stderr, "error (MPI rank %d of %d): %s\n", comm->rank(), comm->size(), status.message().c_str());
    comm->abort_job(1);
  }
  return status;
}

}  // namespace

void register_quantize(CLI::App& root, CommandRunner& runner) {
  auto flags = std::make_shared<QuantizeFlags>();
  CLI::App* app = root.add_subcommand("quantize", "Quantize a model layer by layer per a recipe into a lowbit file");
  app->add_option("model", flags->model_path, "Model: .gguf file, Hugging Face folder, llama2.c .bin or lowbit file");
  app->add_option("--tokenizer", flags->tokenizer_path,
                  "Tokenizer file (llama2.c tokenizer.bin, tokenizer.json, .model)")
      ->check(CLI::ExistingFile);
  app->add_option("-r,--recipe", flags->recipe, "Built-in recipe name (--list-recipes) or recipe JSON file");
  app->add_option("--calib", flags->calib_path,
                  "Calibration text or JSONL (default for data-aware recipes: $LOWBIT_SHARED_DIR/" +
                      std::string(kDefaultCalibration) + ", LOWBIT_SHARED_DIR defaulting to ../shared)")
      ->check(CLI::ExistingFile);
  app->add_option("--calib-samples", flags->calib_samples,
                  "Calibration windows N (0 = scaled to the model: 32 tokens per column of the widest linear "
                  "input, 8 to 128 windows)")
      ->check(CLI::Range(0, 1 << 16))
      ->capture_default_str();
  app->add_option("--calib-len", flags->calib_len, "Tokens per calibration window L (0 = min(2048, context))")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  app->add_option("--seed", flags->seed, "Seed of the calibration windows")->capture_default_str();
  app->add_option("--calib-shards", flags->calib_shards,
                  "Sum the calibration statistics in N contiguous shards of windows, added in order, as `mpirun -np "
                  "N` does: one process then writes the same file (0 = the number of MPI ranks)")
      ->check(CLI::Range(0, 1 << 16))
      ->capture_default_str();
  app->add_option("--calib-bos", flags->calib_bos,
                  "BOS in calibration windows: auto (document start when the tokenizer adds BOS), none, first, "
                  "document")
      ->check(CLI::IsMember({"auto", "none", "first", "document"}))
      ->capture_default_str();
  app->add_option("--hessian", flags->hessian,
                  "Accumulation of H = XᵀX: fp64 (default) or fp32; bf16 under --calib-arith bf16 (its default)")
      ->check(CLI::IsMember({"fp64", "fp32", "bf16"}));
  app->add_option("--calib-arith", flags->calib_arith,
                  "Products of the calibration forward and of H: fp32, or bf16 (BF16 operands, FP32 sums: twice the "
                  "FP32 rate with AVX512_BF16; GPTQ itself stays FP64)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  app->add_option("-t,--threads", flags->threads, "Threads")->check(CLI::Range(1, 256))->capture_default_str();
  app->add_option("-o,--output", flags->output_path, "Output lowbit model file (written as OUT.tmp, then renamed)");
  app->add_option("--json", flags->json_path, "Write a JSON report (per-module error, bits per weight, time, RSS)");
  add_kv_flags(*app, flags->kv);
  app->add_option("--target-size", flags->target_mb,
                  "Size budget in MB (10^6 bytes) of every stored tensor: per-tensor formats chosen from --menu to "
                  "minimise the predicted KL divergence")
      ->excludes("--recipe");
  app->add_option("--target-bpw", flags->target_bpw, "Size budget in bits per weight over every stored parameter")
      ->excludes("--recipe")
      ->excludes("--target-size");
  app->add_option("--menu", flags->menu, "Size-budget candidates: gguf, gguf-rtn, lowbit, tcq, all or a menu JSON file")
      ->capture_default_str();
  app->add_option("--sensitivity", flags->sensitivity, "Size-budget sensitivity: proxy, hutchinson, measured, spike")
      ->check(CLI::IsMember({"proxy", "hutchinson", "measured", "spike"}))
      ->capture_default_str();
  app->add_option("--probes", flags->probes, "Rademacher probes of the sensitivity pass")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app->add_option("--recipe-out", flags->recipe_out, "Write the allocated recipe (reproduces the model) to this JSON file");
  app->add_option("--sensitivity-out", flags->sensitivity_out, "Write the sensitivity table to this JSON file");
  app->add_option("--sensitivity-in", flags->sensitivity_in,
                  "Reuse a sensitivity table written by --sensitivity-out (same model, menu and calibration)")
      ->check(CLI::ExistingFile);
  app->add_flag("--list-recipes", flags->list_recipes, "List the built-in recipes with bits per weight");
  app->add_flag("--resume", flags->resume,
                "Continue a killed run from its last finished layer (OUT.ckpt); the output is bit-identical to an "
                "uninterrupted run");
  app->add_flag("--no-checkpoint", flags->no_checkpoint,
                "Write no OUT.ckpt after each layer (it holds the calibration hidden states; a killed run then "
                "cannot be resumed)")
      ->excludes("--resume");
  add_progress_flags(*app, flags->progress);
  app->add_flag("-v,--verbose", flags->verbose, "Print the resolved configuration and one line per module");
  app->callback([flags, &runner] { runner.run = [flags] { return run_quantize(*flags); }; });
}

}  // namespace lowbit::cli
