// `lowbit bench MODEL [-p 512] [-n 128] [-t T] [--reps R] [--json F]`
#include <cstdio>

#include "cli/commands.h"
#include "eval/bench.h"

namespace lowbit::cli {
namespace {

struct BenchFlags {
  ModelFlags model;
  BenchOptions options;
};

Status run_bench_command(const BenchFlags& f) {
  configure_threads(f.model.threads);
  LB_ASSIGN_OR_RETURN(RunnableModel m, load_runnable(f.model.model_path, f.model.tokenizer_path));
  ThreadPool pool(f.model.threads);
  LB_ASSIGN_OR_RETURN(BenchResult r, run_bench(m.model, f.options, pool));
  auto spread = [](const std::vector<double>& v) {
    return std::make_pair(*std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
  };
  const auto [pp_lo, pp_hi] = spread(r.pp_tps);
  const auto [tg_lo, tg_hi] = spread(r.tg_tps);
  const uint64_t weight_bytes = m.model.weight_bytes();
  std::printf("model %s, %d threads, %d repetitions, weights %.1f MB (f32 runtime)\n", f.model.model_path.c_str(),
              f.model.threads, f.options.repetitions, weight_bytes / 1e6);
  std::printf("pp%d: %.1f tokens/s median (min %.1f, max %.1f)\n", f.options.prompt_tokens, r.pp_median, pp_lo, pp_hi);
  std::printf("tg%d: %.1f tokens/s median (min %.1f, max %.1f)\n", f.options.decode_tokens, r.tg_median, tg_lo, tg_hi);
  std::printf("peak RSS: %.1f MB\n", r.peak_rss_bytes / 1e6);
  nlohmann::json report = {
      {"model", f.model.model_path},
      {"threads", f.model.threads},
      {"prompt_tokens", f.options.prompt_tokens},
      {"decode_tokens", f.options.decode_tokens},
      {"repetitions", f.options.repetitions},
      {"pp_tps", r.pp_median},
      {"tg_tps", r.tg_median},
      {"pp_tps_all", r.pp_tps},
      {"tg_tps_all", r.tg_tps},
      {"weight_bytes", weight_bytes},
      {"peak_rss_bytes", r.peak_rss_bytes},
  };
  return write_json_report(f.model.json_path, report);
}

}  // namespace

void register_bench(CLI::App& root, CommandRunner& runner) {
  auto flags = std::make_shared<BenchFlags>();
  CLI::App* app = root.add_subcommand("bench", "Prompt-processing and decode speed, median over repetitions");
  add_model_flags(*app, flags->model, true);
  app->add_option("-p,--prompt-tokens", flags->options.prompt_tokens, "Prompt tokens per pp run")
      ->check(CLI::Range(1, 1 << 20))->capture_default_str();
  app->add_option("-n,--decode-tokens", flags->options.decode_tokens, "Tokens per tg run")
      ->check(CLI::Range(1, 1 << 20))->capture_default_str();
  app->add_option("--reps", flags->options.repetitions, "Repetitions")->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app->callback([flags, &runner] { runner.run = [flags] { return run_bench_command(*flags); }; });
}

}  // namespace lowbit::cli
