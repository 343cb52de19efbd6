// `lowbit inspect MODEL --calib FILE [--calib-samples N] [--calib-len L] [--seed S] [--json F] [--plot DIR]
//                 [--after none|rot|smooth|all] [--alpha A] [--top K] [--threads T]`
// Where a model's activation outliers are: per layer and linear input, channel
// maxima, kurtosis, max/median, near-zero fraction; massive activations in the
// residual stream; the same after QuaRot rotation and/or SmoothQuant
// (pipeline/inspect*.h). Text report on stdout, everything in --json, PNG plots
// with gnuplot in --plot DIR.
#include <cstdio>

#include "cli/commands.h"
#include "cli/gnuplot.h"
#include "cli/inspect_plot.h"
#include "pipeline/inspect_report.h"
#include "pipeline/inspect_variants.h"

namespace lowbit::cli {
namespace {

struct InspectFlags {
  ModelFlags model;
  std::string calib_path;
  int calib_samples = 8;
  int calib_len = 0;
  uint64_t seed = 0;
  std::string plot_dir;
  std::string after = "all";
  float alpha = 0.5f;
  int top_k = 8;
};

constexpr int kDefaultLength = 512;

Status run_inspect(const InspectFlags& f) {
  LB_RETURN_IF_ERROR(check_output_file("--json", f.model.json_path));
  if (!f.plot_dir.empty()) {
    LB_RETURN_IF_ERROR(check_output_folder_path(f.plot_dir).with_context("--plot " + f.plot_dir));
  }
  configure_threads(f.model.threads);
  std::string gnuplot;
  if (!f.plot_dir.empty()) {
    Expected<std::string> found = find_gnuplot();  // before the long run
    if (!found.ok()) return found.status().with_context("--plot");
    gnuplot = *found;
  }
  LoadOptions load;
  load.tokenizer_path = f.model.tokenizer_path;
  LB_ASSIGN_OR_RETURN(LoadedModel m, load_model(f.model.model_path, load));
  if (m.tokenizer == nullptr) {
    return make_error("{}: no tokenizer to read the calibration text (--tokenizer)", f.model.model_path);
  }
  const ModelConfig& config = m.config;
  CalibrationOptions co;
  co.n_samples = f.calib_samples;
  co.seq_len = f.calib_len == 0 ? std::min(kDefaultLength, config.max_seq_len) : f.calib_len;
  co.seed = f.seed;
  co.bos = m.tokenizer->add_bos() && m.tokenizer->bos_id() >= 0 ? CalibrationBos::kDocumentStart
                                                                : CalibrationBos::kNone;
  if (co.seq_len > config.max_seq_len) {
    return make_error("--calib-len {}: longer than the model's context ({})", co.seq_len, config.max_seq_len);
  }
  auto windows = load_calibration(f.calib_path, *m.tokenizer, co);
  if (!windows.ok()) return windows.status().with_context("--calib");
  if (f.model.verbose) {
    std::fprintf(stderr, "inspect: %s, calibration %s (%d x %d tokens, seed %llu, bos %s), after %s, top %d, threads %d\n",
                 f.model.model_path.c_str(), f.calib_path.c_str(), co.n_samples, co.seq_len,
                 static_cast<unsigned long long>(co.seed), co.bos == CalibrationBos::kNone ? "none" : "document",
                 f.after.c_str(), f.top_k, f.model.threads);
  }

  InspectReport report;
  report.model_path = f.model.model_path;
  report.calibration = {{"path", f.calib_path},
                        {"n_samples", co.n_samples},
                        {"seq_len", co.seq_len},
                        {"seed", co.seed},
                        {"bos", co.bos == CalibrationBos::kNone ? "none" : "document"}};
  report.windows = &*windows;
  report.tokenizer = m.tokenizer.get();
  report.top_k = f.top_k;
  InspectOptions options;
  options.top_k = f.top_k;
  options.progress = show_progress(f.model.progress);
  ThreadPool pool(f.model.threads);

  const bool rot = f.after == "rot" || f.after == "all";
  const bool smooth = f.after == "smooth" || f.after == "all";
  // The last run takes the loaded weights; the others a copy.
  auto weights_for = [&m](bool last) { return last ? std::move(m.weights) : ModelWeights(m.weights); };
  LB_ASSIGN_OR_RETURN(InspectVariant plain,
                      inspect_plain(config, weights_for(!rot && !smooth), *windows, options, pool));
  report.variants.push_back(std::move(plain));
  if (rot) {
    LB_ASSIGN_OR_RETURN(InspectVariant r, inspect_rotated(config, weights_for(!smooth), RotationSpec{}, *windows,
                                                          options, pool, report.notes));
    report.variants.push_back(std::move(r));
  }
  if (smooth) {
    LB_ASSIGN_OR_RETURN(InspectVariant s, inspect_smoothed(config, std::move(m.weights), report.variants[0].result,
                                                           f.alpha, *windows, options, pool));
    report.variants.push_back(std::move(s));
  }

  std::fputs(inspect_report_text(report).c_str(), stdout);
  LB_RETURN_IF_ERROR(write_json_report(f.model.json_path, inspect_report_json(report)));
  if (!f.plot_dir.empty()) {
    LB_ASSIGN_OR_RETURN(std::vector<std::string> pngs, write_inspect_plots(report, f.plot_dir, gnuplot));
    std::printf("\nplots: %zu PNG files in %s (data files and inspect.gp beside them)\n", pngs.size(),
                f.plot_dir.c_str());
  }
  return Status::ok_status();
}

}  // namespace

void register_inspect(CLI::App& root, CommandRunner& runner) {
  auto flags = std::make_shared<InspectFlags>();
  CLI::App* app = root.add_subcommand(
      "inspect", "Activation outliers per layer and linear input (channel maxima, kurtosis, massive activations), "
                 "before and after rotation / SmoothQuant");
  add_model_flags(*app, flags->model, true);
  app->add_option("--calib", flags->calib_path, "Calibration text or JSONL (C4: one {\"text\": ...} per line)")
      ->required()
      ->check(CLI::ExistingFile);
  app->add_option("--calib-samples", flags->calib_samples, "Calibration windows N")
      ->check(CLI::Range(1, 1 << 12))
      ->capture_default_str();
  app->add_option("--calib-len", flags->calib_len,
                  "Tokens per window L (0 = min(" + std::to_string(kDefaultLength) + ", context))")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  app->add_option("--seed", flags->seed, "Seed of the calibration windows")->capture_default_str();
  app->add_option("--plot", flags->plot_dir, "Write PNG plots (gnuplot) and their data files into this folder");
  app->add_option("--after", flags->after,
                  "Also inspect the model after: none, rot (QuaRot rotation), smooth (SmoothQuant), all")
      ->check(CLI::IsMember({"none", "rot", "smooth", "all"}))
      ->capture_default_str();
  app->add_option("--alpha", flags->alpha, "SmoothQuant migration strength for --after smooth|all")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  app->add_option("--top", flags->top_k, "Top channels listed per layer and input")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app->callback([flags, &runner] { runner.run = [flags] { return run_inspect(*flags); }; });
}

}  // namespace lowbit::cli
