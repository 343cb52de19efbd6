// `lowbit generate MODEL --prompt TEXT -n N [--temp T] [--top-k K] [--top-p P] [--seed S]
//  [--kv SPEC|FILE [--kv-calib F] [--kv-tune BITS] [--kv-save F]] [--deterministic] [--json F]`
#include <cstdio>

#include "cli/commands.h"
#include "cli/kv_cli.h"
#include "eval/sampler.h"

namespace lowbit::cli {
namespace {

struct GenerateFlags {
  ModelFlags model;
  std::string prompt;
  int n_tokens = 64;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  bool ignore_eos = false;
  KvFlags kv;
};

Status run_generate(const GenerateFlags& f) {
  LB_RETURN_IF_ERROR(check_output_file("--json", f.model.json_path));
  LB_RETURN_IF_ERROR(check_output_file("--kv-save", f.kv.save_path));
  configure_threads(f.model.threads);
  LB_ASSIGN_OR_RETURN(RunnableModel m,
                      load_runnable(f.model.model_path, f.model.tokenizer_path, nullptr, act_runtime(f.model)));
  const Tokenizer& tok = *m.loaded.tokenizer;
  std::vector<int32_t> prompt;
  if (tok.add_bos() && tok.bos_id() >= 0) prompt.push_back(tok.bos_id());
  auto body = tok.encode_checked(f.prompt);
  if (!body.ok()) return body.status().with_context("--prompt");
  prompt.insert(prompt.end(), body->begin(), body->end());
  if (prompt.empty()) return make_error("--prompt: empty prompt and the vocabulary adds no BOS token");

  GenerateOptions options;
  options.max_new_tokens = f.n_tokens;
  options.sampling.temperature = f.temperature;
  options.sampling.top_k = f.top_k;
  options.sampling.top_p = f.top_p;
  options.sampling.seed = f.seed;
  options.stop_at_eos = !f.ignore_eos;
  if (f.model.verbose) {
    std::fprintf(stderr, "generate: %zu prompt tokens, n %d, temp %g, top-k %d, top-p %g, seed %llu, threads %d\n",
                 prompt.size(), f.n_tokens, f.temperature, f.top_k, f.top_p,
                 static_cast<unsigned long long>(f.seed), f.model.threads);
  }
  ThreadPool pool(f.model.threads);
  LB_ASSIGN_OR_RETURN(ResolvedKv kv, resolve_kv(f.kv, f.model.model_path, m, pool, f.model.verbose));
  options.kv_cache = kv.factory;
  LB_ASSIGN_OR_RETURN(GenerateResult result, generate(m.model, tok, prompt, options, pool));
  const std::string text = tok.decode(result.tokens);
  std::printf("%s%s\n", f.prompt.c_str(), text.c_str());
  std::fprintf(stderr, "prompt: %zu tokens, %.1f tokens/s; generated: %zu tokens, %.1f tokens/s\n",
               result.prompt_tokens.size(), result.prompt_tokens_per_s(), result.tokens.size(), result.tokens_per_s());
  nlohmann::json report = {
      {"model", f.model.model_path},
      {"prompt", f.prompt},
      {"prompt_tokens", result.prompt_tokens},
      {"tokens", result.tokens},
      {"text", text},
      {"tokens_per_s", result.tokens_per_s()},
      {"prompt_tokens_per_s", result.prompt_tokens_per_s()},
      {"temperature", f.temperature},
      {"top_k", f.top_k},
      {"top_p", f.top_p},
      {"seed", f.seed},
      {"threads", f.model.threads},
      {"deterministic", f.model.deterministic},
      {"weight_bytes", m.model.weight_bytes()},  // held by the runtime model (packed where stored quantized)
  };
  add_kv_report(report, kv, m.model.config(), result.kv_bytes_per_token, result.kv_bytes_allocated);
  return write_json_report(f.model.json_path, report);
}

}  // namespace

void register_generate(CLI::App& root, CommandRunner& runner) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* app = root.add_subcommand("generate", "Generate text from a prompt");
  add_model_flags(*app, flags->model, true);
  app->add_option("-p,--prompt", flags->prompt, "Prompt text")->required();
  app->add_option("-n,--n-tokens", flags->n_tokens, "Tokens to generate")->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app->add_option("--temp", flags->temperature, "Sampling temperature (0 = greedy)")->check(CLI::Range(0.0f, 100.0f))
      ->capture_default_str();
  app->add_option("--top-k", flags->top_k, "Keep the k most likely tokens (0 = off)")->check(CLI::Range(0, 1 << 24))
      ->capture_default_str();
  app->add_option("--top-p", flags->top_p, "Nucleus sampling mass (1 = off)")->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  app->add_option("--seed", flags->seed, "Random seed")->capture_default_str();
  app->add_flag("--ignore-eos", flags->ignore_eos, "Keep generating after the end-of-sequence token");
  add_kv_flags(*app, flags->kv);
  add_kv_attention_flag(*app, flags->kv);
  add_deterministic_flag(*app, flags->model.deterministic);
  app->callback([flags, &runner] { runner.run = [flags] { return run_generate(*flags); }; });
}

}  // namespace lowbit::cli
