// `lowbit pareto MODEL --calib F --text F -o DIR [--gguf FILE...] [--budgets MB,...] [--sweep N]
//                [--uniform NAME,...] [--menu M] [--sensitivity S] [--ctx 512] [--chunks 32]`
// Size against accuracy on one chart (issue 15): one sensitivity pass, then a
// model allocated for each budget (the sizes of the given GGUF files, --budgets,
// and --sweep budgets spread over the menu's range) and each uniform recipe of
// the menu, all evaluated with the given GGUF files (llama.cpp's quants, say) on
// the same chunks of --text against MODEL. Writes into DIR: every model and the
// recipe that reproduces it, pareto.md (table), pareto.json, pareto_{kld,ppl}.{png,svg}
// and sensitivity.json; prints the Spearman rank correlation of predicted and
// measured KLD over the points that have a prediction.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli/commands.h"
#include "cli/gnuplot.h"
#include "cli/pareto_chart.h"
#include "core/mapped_file.h"
#include "eval/metrics.h"
#include "eval/perplexity.h"
#include "model/model_source.h"
#include "pipeline/size_budget.h"
#include "io/untrusted_json.h"

namespace lowbit::cli {
namespace {

using json = nlohmann::json;

struct ParetoFlags {
  std::string model_path;
  std::string tokenizer_path;
  std::string calib_path;
  std::string text_path;
  std::vector<std::string> gguf;
  std::vector<double> budgets_mb;
  int sweep = -1;  // -1: 4 when no other budget is given, else 0
  std::vector<std::string> uniform;
  std::string menu = "gguf";
  std::string sensitivity = "hutchinson";
  int probes = 2;
  int ctx = 512;
  int chunks = 32;
  int calib_samples = 0;  // 0: calibration_defaults (pipeline/quantize_pipeline.h)
  int calib_len = 0;
  uint64_t seed = 0;
  int threads = 2;
  std::string out_dir;
  ProgressFlags progress;
  std::string sensitivity_in;
};

// A model the sweep makes: where it is, its recipe, what the allocator predicts.
struct Planned {
  ParetoPoint point;
  std::string path;
  std::string recipe_path;  // allocations and uniform recipes: the recipe written beside the model
  std::optional<BudgetAllocation> allocation;
};

uint64_t stored_bytes(const FileSummary& s) {
  uint64_t bytes = 0;
  for (const StoredTensor& t : s.tensors) bytes += t.n_bytes;
  return bytes;
}

std::string quote(const std::string& s) { return s.find(' ') == std::string::npos ? s : "'" + s + "'"; }

Status run_pareto(const ParetoFlags& f) {
  configure_threads(f.threads);
  LB_RETURN_IF_ERROR(check_output_folder_path(f.out_dir).with_context("-o " + f.out_dir));
  std::error_code ec;
  std::filesystem::create_directories(f.out_dir, ec);
  if (ec) return make_error("-o {}: cannot create the directory ({})", f.out_dir, ec.message());
  LB_ASSIGN_OR_RETURN(std::string gnuplot, find_gnuplot());
  LB_ASSIGN_OR_RETURN(SizeMenu menu, load_size_menu(f.menu));
  LB_ASSIGN_OR_RETURN(SensitivityMode mode, parse_sensitivity_mode(f.sensitivity));
  LB_ASSIGN_OR_RETURN(std::string text, read_text_file(f.text_path));

  PipelineOptions o;
  o.model_path = f.model_path;
  o.load.tokenizer_path = f.tokenizer_path;
  o.calib_path = f.calib_path;
  o.calibration.n_samples = f.calib_samples;
  o.calibration.seq_len = f.calib_len;
  o.calibration.seed = f.seed;
  {
    LB_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model_source(f.model_path, o.load));
    o.calibration = announce_calibration(source->config(), o.calibration, f.calib_path, f.progress.quiet);
  }
  o.threads = f.threads;
  o.progress = show_progress(f.progress);
  o.checkpoint = false;  // pareto's many short quantizations are not resumable
  SensitivityOptions so;
  so.mode = mode;
  so.probes = f.probes;
  so.seed = f.seed;
  LB_ASSIGN_OR_RETURN(SensitivityTable table, sensitivity_table(f.sensitivity_in, menu, o, so));
  LB_RETURN_IF_ERROR(write_file_atomic(f.out_dir + "/sensitivity.json", dump_json(table.to_json(), 1)));
  std::printf("sensitivity (%s, menu %s): %zu tensors, %.1f s\n", sensitivity_mode_name(mode), menu.name.c_str(),
              table.tensors.size(), table.seconds);

  // Budgets: the GGUF files' sizes, --budgets, and the sweep.
  std::vector<uint64_t> budgets;
  for (const std::string& g : f.gguf) {
    LB_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> s, open_model_source(g, {}));
    budgets.push_back(stored_bytes(s->summary()));
  }
  for (double mb : f.budgets_mb) {
    LB_ASSIGN_OR_RETURN(uint64_t b, budget_bytes(table, mb, std::nullopt));
    budgets.push_back(b);
  }
  const int sweep = f.sweep >= 0 ? f.sweep : (budgets.empty() ? 4 : 0);
  const BudgetRange range = budget_range(table);
  for (int i = 0; i < sweep; ++i) {  // evenly in bytes from the smallest model to 8.5 bits per weight
    const double hi = std::min<double>(range.max_bytes, 8.5 * table.params / 8.0);
    budgets.push_back(static_cast<uint64_t>(range.min_bytes + (hi - range.min_bytes) * (i + 1) / (sweep + 1)));
  }
  std::sort(budgets.begin(), budgets.end());
  budgets.erase(std::unique(budgets.begin(), budgets.end()), budgets.end());

  const std::string calib_flags = fmt::format("--calib {} --calib-samples {} --calib-len {} --seed {} -t {}",
                                              quote(f.calib_path), o.calibration.n_samples, o.calibration.seq_len, f.seed, f.threads);
  std::vector<Planned> planned;
  auto plan = [&](BudgetAllocation a, const std::string& stem, const std::string& series, const std::string& label) {
    Planned p;
    p.path = f.out_dir + "/" + stem + ".lowbit";
    p.recipe_path = f.out_dir + "/" + stem + ".recipe.json";
    p.point.series = series;
    p.point.label = label;
    p.point.predicted_kld = a.predicted_kld;
    p.point.command = fmt::format("lowbit quantize {} --recipe {} {} -o {}", quote(f.model_path), p.recipe_path,
                                  calib_flags, p.path);
    p.allocation = std::move(a);
    planned.push_back(std::move(p));
  };
  for (uint64_t b : budgets) {
    LB_ASSIGN_OR_RETURN(BudgetAllocation a, allocate_budget(table, menu, b, fmt::format("alloc-{:.3f}MB", b / 1e6)));
    const std::string label = fmt::format("{:.2f} bpw", a.bits_per_weight);
    plan(std::move(a), fmt::format("alloc_{:.3f}MB", b / 1e6), fmt::format("lowbit allocated ({})", menu.name), label);
  }
  for (const std::string& u : f.uniform) {
    LB_ASSIGN_OR_RETURN(std::vector<int> choice, uniform_choice(table, menu, u));
    plan(allocation_of(table, menu, choice, "uniform-" + u, "uniform " + u), "uniform_" + u, "lowbit uniform", u);
  }
  for (Planned& p : planned) {
    LB_RETURN_IF_ERROR(write_file_atomic(p.recipe_path, dump_json(p.allocation->recipe, 1) + "\n"));
    LB_ASSIGN_OR_RETURN(Recipe recipe, parse_recipe(p.allocation->recipe, p.recipe_path));
    PipelineOptions q = o;
    q.output_path = p.path;
    LB_ASSIGN_OR_RETURN(QuantizeReport r, quantize_model(recipe, q));
    std::printf("wrote %s: %.3f MB, predicted KLD %.5f, %.1f s\n", p.path.c_str(), p.allocation->bytes / 1e6,
                p.allocation->predicted_kld, r.seconds);
  }
  for (const std::string& g : f.gguf) {
    Planned p;
    p.path = g;
    p.point.series = "given GGUF";
    p.point.label = std::filesystem::path(g).stem().string();
    p.point.command = "(given) " + g;
    planned.push_back(std::move(p));
  }

  // One evaluation pass: the base once per chunk, every model on the same tokens.
  LB_ASSIGN_OR_RETURN(RunnableModel base, load_runnable(f.model_path, f.tokenizer_path));
  if (base.loaded.tokenizer == nullptr) return make_error("{}: no tokenizer for --text (--tokenizer)", f.model_path);
  const Tokenizer& tok = *base.loaded.tokenizer;
  std::vector<RunnableModel> models;
  std::vector<const LlamaModel*> pointers;
  for (Planned& p : planned) {
    LB_ASSIGN_OR_RETURN(RunnableModel m, load_runnable(p.path, f.tokenizer_path));
    const uint64_t bytes = stored_bytes(m.loaded.summary);
    p.point.size_mb = static_cast<double>(bytes) / 1e6;
    p.point.bpw = file_bits_per_weight(m.loaded.summary);
    if (p.allocation && bytes != p.allocation->bytes) {
      std::fprintf(stderr, "lowbit: warning: %s stores %llu tensor bytes, the allocation counted %llu\n",
                   p.path.c_str(), static_cast<unsigned long long>(bytes),
                   static_cast<unsigned long long>(p.allocation->bytes));
    }
    models.push_back(std::move(m));
  }
  for (const RunnableModel& m : models) pointers.push_back(&m.model);
  PplOptions po;
  po.ctx = f.ctx;
  po.max_chunks = f.chunks;
  po.add_bos = tok.add_bos() && tok.bos_id() >= 0;
  po.bos_id = tok.bos_id();
  po.show_progress = o.progress;
  ThreadPool pool(f.threads);
  auto tokens = tok.encode_checked(text);
  if (!tokens.ok()) return tokens.status().with_context(f.text_path);
  LB_ASSIGN_OR_RETURN(std::vector<PplResult> results, evaluate_perplexity_many(pointers, *tokens, po, pool, base.model));
  std::vector<ParetoPoint> points;
  std::vector<double> predicted, measured;
  json rows = json::array();
  for (size_t i = 0; i < planned.size(); ++i) {
    ParetoPoint& p = planned[i].point;
    p.kld = results[i].kld_mean;
    p.kld_stderr = results[i].kld_stderr;
    p.ppl = results[i].ppl;
    p.ppl_stderr = results[i].ppl_stderr;
    if (!std::isnan(p.predicted_kld)) {
      predicted.push_back(p.predicted_kld);
      measured.push_back(p.kld);
    }
    rows.push_back({{"series", p.series},        {"label", p.label},       {"path", planned[i].path},
                    {"size_mb", p.size_mb},      {"bpw", p.bpw},           {"kld", p.kld},
                    {"kld_stderr", p.kld_stderr}, {"ppl", p.ppl},          {"ppl_stderr", p.ppl_stderr},
                    {"top1_agree", results[i].top1_agree},
                    {"predicted_kld", std::isnan(p.predicted_kld) ? json(nullptr) : json(p.predicted_kld)},
                    {"command", p.command}});
    points.push_back(p);
  }
  const double rho = spearman_rank_correlation(predicted, measured);
  std::string md = pareto_markdown(points);
  md += fmt::format(
      "\nBase {}; text {} ({} chunks of {} tokens, llamacpp protocol); sensitivity {} over menu {} ({} calibration "
      "windows of {} tokens from {}); Spearman rank correlation of predicted and measured KLD over {} points: {:.3f}\n",
      f.model_path, f.text_path, results.empty() ? 0 : results[0].chunks, f.ctx, sensitivity_mode_name(mode),
      menu.name, o.calibration.n_samples, o.calibration.seq_len, f.calib_path, predicted.size(), rho);
  LB_RETURN_IF_ERROR(write_file_atomic(f.out_dir + "/pareto.md", md));
  LB_RETURN_IF_ERROR(write_file_atomic(
      f.out_dir + "/pareto.json",
      dump_json(json({{"model", f.model_path}, {"text", f.text_path}, {"ctx", f.ctx}, {"chunks", f.chunks},
                      {"menu", menu.name}, {"sensitivity", sensitivity_mode_name(mode)},
                      {"sensitivity_seconds", table.seconds}, {"spearman", rho}, {"points", rows}}),
                1)));
  LB_ASSIGN_OR_RETURN(std::vector<std::string> images,
                      write_pareto_charts(points, f.out_dir + "/pareto", gnuplot,
                                          fmt::format("{}: size against KL divergence", f.model_path)));
  std::printf("%s", md.c_str());
  for (const std::string& i : images) std::printf("wrote %s\n", i.c_str());
  return Status::ok_status();
}

}  // namespace

void register_pareto(CLI::App& root, CommandRunner& runner) {
  auto flags = std::make_shared<ParetoFlags>();
  CLI::App* app = root.add_subcommand(
      "pareto", "Size against KL divergence: size-budget allocations, uniform recipes and given GGUF files on one chart");
  app->add_option("model", flags->model_path, "The unquantized model (base of the KL divergence)")->required();
  app->add_option("--tokenizer", flags->tokenizer_path, "Tokenizer file")->check(CLI::ExistingFile);
  app->add_option("--calib", flags->calib_path, "Calibration text or JSONL")->required()->check(CLI::ExistingFile);
  app->add_option("--text", flags->text_path, "Evaluation text")->required()->check(CLI::ExistingFile);
  app->add_option("-o,--output", flags->out_dir, "Output directory")->required();
  app->add_option("--gguf", flags->gguf, "GGUF files to evaluate beside (their sizes become budgets)")
      ->check(CLI::ExistingFile);
  app->add_option("--budgets", flags->budgets_mb, "Budgets in MB (10^6 bytes of stored tensors)")->delimiter(',');
  app->add_option("--sweep", flags->sweep, "Budgets spread from the smallest model to 8.5 bits per weight")
      ->check(CLI::Range(0, 64));
  app->add_option("--uniform", flags->uniform, "Menu candidates to also store uniformly (e.g. q4_K,q5_K)")
      ->delimiter(',');
  app->add_option("--menu", flags->menu, "gguf, gguf-rtn, lowbit, tcq, all or a menu JSON file")->capture_default_str();
  app->add_option("--sensitivity", flags->sensitivity, "proxy, hutchinson, measured or spike")
      ->check(CLI::IsMember({"proxy", "hutchinson", "measured", "spike"}))
      ->capture_default_str();
  app->add_option("--probes", flags->probes, "Rademacher probes")->check(CLI::Range(1, 64))->capture_default_str();
  app->add_option("--ctx", flags->ctx, "Evaluation chunk length")->check(CLI::Range(2, 1 << 20))->capture_default_str();
  app->add_option("--chunks", flags->chunks, "Evaluation chunks (0: all)")->check(CLI::Range(0, 1 << 20))->capture_default_str();
  app->add_option("--calib-samples", flags->calib_samples, "Calibration windows (0 = scaled to the model, as quantize)")
      ->check(CLI::Range(0, 1 << 16))
      ->capture_default_str();
  app->add_option("--calib-len", flags->calib_len, "Tokens per calibration window (0 = min(2048, context))")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  app->add_option("--seed", flags->seed, "Seed of calibration windows and probes")->capture_default_str();
  app->add_option("-t,--threads", flags->threads, "Threads")->check(CLI::Range(1, 256))->capture_default_str();
  add_progress_flags(*app, flags->progress);
  app->add_option("--sensitivity-in", flags->sensitivity_in,
                  "Reuse a sensitivity table written by quantize --sensitivity-out (same model, menu, calibration)")
      ->check(CLI::ExistingFile);
  app->callback([flags, &runner] { runner.run = [flags] { return run_pareto(*flags); }; });
}

}  // namespace lowbit::cli
