// `lowbit bench MODEL|--shape NAME|DIMS [--recipe R] [-p 512] [-n 128] [-t T] [--reps R] [--json F]`
//
// Times prompt processing (one batched forward of -p tokens) and decode (-n
// one-token steps), and probes the memory bandwidth in the same process
// (eval/bandwidth.h) so the decode roofline fraction
//   roofline_fraction = weight_bytes_per_token * tg_tps / bandwidth_gbs
// compares like with like (the read probe: decode streams the weights once per
// token). --shape builds a random-weight model of that shape stored in the
// recipe's formats (eval/synthetic_model.h): random codes stand in for what the
// recipe's method would choose (GPTQ, RTN or a scale search change the codes,
// not the bytes a token reads nor the kernels), and a rotation's online
// Hadamard on down_proj runs as it would in the quantized model; a dynamic
// activation spec in the recipe runs as lowbit ppl runs it (integer kernels
// where exact, else the simulation).
#include <cstdio>
#include <map>
#include <memory>

#include "cli/commands.h"
#include "cli/kv_cli.h"
#include "eval/bandwidth.h"
#include "eval/bench.h"
#include "eval/synthetic_model.h"
#include "kernels/fixed_order.h"
#include "model/deterministic.h"
#include "model/act_quant_linear.h"
#include "model/online_hadamard_linear.h"
#include "pipeline/recipe.h"

namespace lowbit::cli {
namespace {

struct BenchFlags {
  std::string model_path;
  std::string tokenizer_path;
  std::string shape;
  std::string recipe = "fp32";
  int threads = 2;
  std::string json_path;
  bool verbose = false;
  bool no_bandwidth = false;
  bool deterministic = false;  // model/deterministic.h after the model is built
  std::string act = "fp32";
  KvFlags kv;
  BenchOptions options;
  ProgressFlags progress;
};

// What a recipe asks of each linear of a random-weight model: its storage format
// and, where the rule has one, its activation spec; and the recipe's rotation,
// whose online down_proj Hadamard costs time per token (the folded parts cost
// none). A recipe whose activations are per-tensor static needs calibrated
// thresholds, which random weights do not have: refused; so are SmoothQuant /
// OS+, whose migrated scales need activation statistics. The activation specs
// run as `lowbit ppl` would run them (attach_act_quantizers: the integer kernels
// where one is exact, else the simulation around the packed linear).
struct RecipeForShape {
  FormatForLinear format;
  std::optional<RotationSpec> rotation;
  // Filled by `format` as the synthetic model asks for each linear.
  std::shared_ptr<std::map<std::string, ActQuantAttachment>> act = std::make_shared<std::map<std::string, ActQuantAttachment>>();
};

Expected<RecipeForShape> recipe_for_shape(const std::string& name) {
  LB_ASSIGN_OR_RETURN(Recipe recipe, load_recipe(name));
  // Read from the document, so recipes of any schema version are checked the same way.
  for (const char* key : {"smooth", "osp"}) {
    if (recipe.json.contains(key)) {
      return make_error("--recipe {}: \"{}\" needs activation statistics; --shape takes recipes without it", name,
                        key);
    }
  }
  RecipeForShape out;
  out.rotation = recipe.rotation;
  out.format = [recipe, name, act = out.act](const std::string& linear) -> Expected<std::string> {
    LB_ASSIGN_OR_RETURN(const QuantRule* matched, recipe.rule_for(linear));
    const QuantRule& rule = *matched;
    if (rule.options.lorc_rank > 0) {
      return make_error("--recipe {}: {} adds a LoRC correction, whose factors come from the quantization error; "
                        "--shape does not build them",
                        name, linear);
    }
    if (rule.act.has_value()) {
      if (rule.act->is_static()) {
        return make_error("--recipe {}: {} has per-tensor static activations, whose thresholds need calibration "
                          "data; --shape takes dynamic (per-token or per-group) activation specs",
                          name, linear);
      }
      (*act)[linear] = ActQuantAttachment{*rule.act, 0.0f};
    }
    return rule.format;
  };
  return out;
}

std::string kernels_line(const AttachReport& r) {
  std::string s;
  for (const auto& [name, n] : r.packed) s += fmt::format("{}{} x{}", s.empty() ? "" : ", ", name, n);
  for (const auto& [why, n] : r.dequantized) s += fmt::format("{}dequantized f32 ({}) x{}", s.empty() ? "" : ", ", why, n);
  return s.empty() ? "f32 (no quantized linears)" : s;
}

Status run_bench_command(const BenchFlags& f) {
  if (f.model_path.empty() == f.shape.empty()) return make_error("bench: give either MODEL or --shape");
  if (f.act != "fp32" && f.shape.empty()) return make_error("bench: --act int8 needs --shape");
  if (!f.kv.spec.empty() && !f.shape.empty()) return make_error("bench: --kv needs MODEL");
  LB_RETURN_IF_ERROR(check_output_file("--json", f.json_path));
  LB_RETURN_IF_ERROR(check_output_file("--kv-save", f.kv.save_path));
  BenchOptions options = f.options;
  options.progress = show_progress(f.progress);
  AttachOptions attach;
  attach.int8_activations = f.act == "int8";
  configure_threads(f.threads);
  ThreadPool pool(f.threads);
  std::optional<LlamaModel> model;
  AttachReport report;
  std::string label;
  std::string act_kernels;  // what a recipe's activation spec runs on, for the kernels line
  bool online_rotation = false;  // --shape: the recipe's down_proj inputs are rotated at run time
  if (!f.shape.empty()) {
    LB_ASSIGN_OR_RETURN(ModelConfig config, shape_config(f.shape));
    config.max_seq_len = std::max(config.max_seq_len,
                                  std::max(f.options.prompt_tokens, f.options.depth + f.options.decode_tokens + 1));
    LB_ASSIGN_OR_RETURN(RecipeForShape recipe, recipe_for_shape(f.recipe));
    LB_ASSIGN_OR_RETURN(SyntheticModel s, build_synthetic_model(config, recipe.format, f.options.seed, pool, attach));
    model.emplace(std::move(s.model));
    report = std::move(s.report);
    if (recipe.rotation) LB_RETURN_IF_ERROR(attach_online_rotations(*model, *recipe.rotation).with_context("--recipe " + f.recipe));
    online_rotation = recipe.rotation && recipe.rotation->online_down;
    if (!recipe.act->empty()) {
      if (f.act != "fp32") return make_error("bench: --recipe {} quantizes activations itself; drop --act", f.recipe);
      ActAttachReport act_report;
      LB_RETURN_IF_ERROR(attach_act_quantizers(*model, *recipe.act, {}, &act_report));
      for (const auto& [kernel, n] : act_report.integer) act_kernels += fmt::format("; activations {} x{}", kernel, n);
      for (const auto& [why, n] : act_report.simulated) act_kernels += fmt::format("; simulated {} x{}", why, n);
    }
    label = fmt::format("shape {} (random codes), recipe {}{}, activations {}", f.shape, f.recipe,
                        online_rotation ? " (online Hadamard on down_proj)" : "", f.act);
  } else {
    LB_ASSIGN_OR_RETURN(RunnableModel m, load_runnable(f.model_path, f.tokenizer_path, &report, {false, f.verbose}));
    if (!m.act_kernels.empty()) act_kernels = "; activations " + m.act_kernels;
    LB_ASSIGN_OR_RETURN(ResolvedKv kv, resolve_kv(f.kv, f.model_path, m, pool, f.verbose));
    options.kv_cache = kv.factory;
    label = fmt::format("kv {}, ", kv.spec.describe());
    model.emplace(std::move(m.model));
    label += "model " + f.model_path;
  }
  std::string kernels = kernels_line(report) + act_kernels;
  if (f.deterministic) {
    LB_RETURN_IF_ERROR(make_deterministic(*model, active_isa()).with_context("--deterministic"));
    kernels = fmt::format("deterministic {} (weights decoded from: {})", fixed_order_kernels(active_isa()).name, kernels);
    label += ", deterministic";
  }
  const std::string isa = isa_name(active_isa());
  if (f.verbose) std::fprintf(stderr, "kernels (isa %s): %s\n", isa.c_str(), kernels.c_str());

  LB_ASSIGN_OR_RETURN(BenchResult r, run_bench(*model, options, pool));
  BandwidthResult bw;
  if (!f.no_bandwidth) {
    LB_ASSIGN_OR_RETURN(bw, measure_bandwidth({}, pool));
  }
  auto spread = [](const std::vector<double>& v) {
    return std::make_pair(*std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
  };
  const auto [pp_lo, pp_hi] = spread(r.pp_tps);
  const auto [tg_lo, tg_hi] = spread(r.tg_tps);
  const uint64_t weight_bytes = model->weight_bytes();
  const uint64_t per_token = decode_weight_bytes(*model);
  const double achieved_gbs = static_cast<double>(per_token) * r.tg_median / 1e9;
  const double roofline = bw.read_gbs > 0.0 ? achieved_gbs / bw.read_gbs : 0.0;
  std::printf("%s, %d threads, %d repetitions, isa %s\n", label.c_str(), f.threads, f.options.repetitions, isa.c_str());
  std::printf("kernels: %s\n", kernels.c_str());
  std::printf("weights %.1f MB in memory, %.1f MB read per decode token\n", weight_bytes / 1e6, per_token / 1e6);
  std::printf("pp%d: %.2f tokens/s median (min %.2f, max %.2f)\n", f.options.prompt_tokens, r.pp_median, pp_lo, pp_hi);
  std::printf("tg%d at depth %d: %.2f tokens/s median (min %.2f, max %.2f), %.2f GB/s of weights\n",
              f.options.decode_tokens, f.options.depth, r.tg_median, tg_lo, tg_hi, achieved_gbs);
  if (!f.no_bandwidth) {
    std::printf("bandwidth (%d threads): read %.2f GB/s (%.0f MiB), triad %.2f GB/s (3 x %.0f MiB); "
                "decode roofline fraction %.3f\n",
                f.threads, bw.read_gbs, bw.read_bytes / 1048576.0, bw.triad_gbs, bw.triad_bytes / 1048576.0, roofline);
  }
  std::printf("peak RSS: %.1f MB\n", r.peak_rss_bytes / 1e6);
  nlohmann::json j = {
      {"model", f.model_path},
      {"shape", f.shape},
      {"recipe", f.shape.empty() ? "" : f.recipe},
      {"activations", f.act},
      {"online_rotation", online_rotation},
      {"threads", f.threads},
      {"deterministic", f.deterministic},
      {"prompt_tokens", f.options.prompt_tokens},
      {"decode_tokens", f.options.decode_tokens},
      {"depth", f.options.depth},
      {"kv", f.kv.spec.empty() ? "fp32" : f.kv.spec},
      {"kv_attention", f.kv.attention},
      {"repetitions", f.options.repetitions},
      {"pp_tps", r.pp_median},
      {"tg_tps", r.tg_median},
      {"pp_tps_all", r.pp_tps},
      {"tg_tps_all", r.tg_tps},
      {"weight_bytes", weight_bytes},
      {"weight_bytes_per_token", per_token},
      {"achieved_gbs", achieved_gbs},
      {"bandwidth_gbs", f.no_bandwidth ? nlohmann::json(nullptr) : nlohmann::json(bw.read_gbs)},
      {"triad_gbs", f.no_bandwidth ? nlohmann::json(nullptr) : nlohmann::json(bw.triad_gbs)},
      {"roofline_fraction", f.no_bandwidth ? nlohmann::json(nullptr) : nlohmann::json(roofline)},
      {"isa", isa},
      {"kernels", kernels},
      {"peak_rss_bytes", r.peak_rss_bytes},
  };
  return write_json_report(f.json_path, j);
}

}  // namespace

void register_bench(CLI::App& root, CommandRunner& runner) {
  auto flags = std::make_shared<BenchFlags>();
  CLI::App* app = root.add_subcommand("bench", "Prompt-processing and decode speed, median over repetitions, "
                                               "with the measured memory bandwidth and decode roofline fraction");
  app->add_option("model", flags->model_path, "Model: .gguf, .lowbit, Hugging Face folder or llama2.c .bin");
  app->add_option("--tokenizer", flags->tokenizer_path, "Tokenizer file (llama2.c models)")->check(CLI::ExistingFile);
  app->add_option("--shape", flags->shape, "Random-weight model of this shape instead of MODEL: " + shape_names());
  app->add_option("--recipe", flags->recipe, "With --shape: a recipe (lowbit quantize --list-recipes) whose formats hold random codes; its online down_proj rotation and dynamic activation spec run as in lowbit ppl")
      ->capture_default_str();
  app->add_option("-t,--threads", flags->threads, "Threads")->check(CLI::Range(1, 256))->capture_default_str();
  app->add_option("-p,--prompt-tokens", flags->options.prompt_tokens, "Prompt tokens per pp run")
      ->check(CLI::Range(1, 1 << 20))->capture_default_str();
  app->add_option("-n,--decode-tokens", flags->options.decode_tokens, "Tokens per tg run")
      ->check(CLI::Range(1, 1 << 20))->capture_default_str();
  app->add_option("-d,--depth", flags->options.depth, "Context tokens before each tg run (one untimed batched pass)")
      ->check(CLI::Range(0, 1 << 20))->capture_default_str();
  app->add_option("--kv", flags->kv.spec, std::string("With MODEL: quantized KV cache for pp and tg, ") +
                                              kv_spec_help());
  add_kv_attention_flag(*app, flags->kv);
  app->add_option("--reps", flags->options.repetitions, "Repetitions")->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app->add_option("--act", flags->act,
                  "With --shape: fp32, or int8 = quantize linear inputs per token to INT8 and run the W8A8/W4A8 "
                  "integer kernels where the weight layout has one")
      ->check(CLI::IsMember({"fp32", "int8"}))
      ->capture_default_str();
  app->add_flag("--no-bandwidth", flags->no_bandwidth, "Skip the memory bandwidth probe");
  add_deterministic_flag(*app, flags->deterministic);
  app->add_option("--json", flags->json_path, "Write a JSON report to this file");
  app->add_flag("-v,--verbose", flags->verbose, "Print the kernels chosen");
  add_progress_flags(*app, flags->progress);
  app->callback([flags, &runner] { runner.run = [flags] { return run_bench_command(*flags); }; });
}

}  // namespace lowbit::cli
