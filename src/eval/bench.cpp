#include "eval/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <random>

#include <fmt/format.h>

#include "core/progress.h"

namespace lowbit {

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

uint64_t decode_weight_bytes(LlamaModel& model) {
  const ModelConfig& c = model.config();
  uint64_t bytes = (static_cast<uint64_t>(2 * c.n_layers + 1) * c.dim + c.dim) * sizeof(float);  // norms + a row
  for (const std::string& name : model.linear_names()) bytes += model.find_linear(name)->weight_bytes();
  return bytes;
}

uint64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

Expected<BenchResult> run_bench(const LlamaModel& model, const BenchOptions& options, ThreadPool& pool) {
  using Clock = std::chrono::steady_clock;
  const ModelConfig& c = model.config();
  if (options.prompt_tokens < 1 || options.decode_tokens < 1 || options.repetitions < 1) {
    return make_error("bench: -p, -n and --reps must be at least 1");
  }
  if (options.prompt_tokens > c.max_seq_len || options.depth + options.decode_tokens + 1 > c.max_seq_len) {
    return make_error("bench: -p {} / -d {} + -n {} exceed the model context {}", options.prompt_tokens, options.depth,
                      options.decode_tokens, c.max_seq_len);
  }
  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<int32_t> token(0, c.vocab_size - 1);
  std::vector<int32_t> prompt(std::max(options.prompt_tokens, options.depth));
  for (int32_t& t : prompt) t = token(rng);
  std::vector<float> logits(c.vocab_size);
  ForwardOptions last_only;
  last_only.all_logits = false;

  BenchResult result;
  ProgressBar progress("bench", 2ll * options.repetitions, options.progress);
  for (int rep = 0; rep < options.repetitions; ++rep) {
    LB_ASSIGN_OR_RETURN(auto cache, model.make_cache(options.prompt_tokens, options.kv_cache));
    const auto t0 = Clock::now();
    LB_RETURN_IF_ERROR(model.forward(prompt.data(), options.prompt_tokens, 0, *cache, logits.data(), pool, last_only));
    const double pp_s = std::chrono::duration<double>(Clock::now() - t0).count();
    result.pp_tps.push_back(options.prompt_tokens / pp_s);
    progress.update(2ll * rep + 1, fmt::format("pp{} {:.1f} t/s", options.prompt_tokens, result.pp_tps.back()));

    // Decode one token per step, like llama-bench's tg test, after `depth` context tokens.
    cache.reset();  // the pp cache's memory is returned before tg allocates its own
    LB_ASSIGN_OR_RETURN(auto decode_cache, model.make_cache(options.depth + options.decode_tokens, options.kv_cache));
    if (options.depth > 0) {
      LB_RETURN_IF_ERROR(model.forward(prompt.data(), options.depth, 0, *decode_cache, logits.data(), pool, last_only));
    }
    int32_t next = prompt[0];
    const auto t1 = Clock::now();
    for (int i = options.depth; i < options.depth + options.decode_tokens; ++i) {
      LB_RETURN_IF_ERROR(model.forward(&next, 1, i, *decode_cache, logits.data(), pool, last_only));
      next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    const double tg_s = std::chrono::duration<double>(Clock::now() - t1).count();
    result.tg_tps.push_back(options.decode_tokens / tg_s);
    progress.update(2ll * rep + 2, fmt::format("tg{} {:.1f} t/s", options.decode_tokens, result.tg_tps.back()));
  }
  progress.finish();
  result.pp_median = median(result.pp_tps);
  result.tg_median = median(result.tg_tps);
  result.peak_rss_bytes = peak_rss_bytes();
  return result;
}

}  // namespace lowbit
