#include "eval/sampler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

namespace lowbit {

int32_t sample_token(const float* logits, int vocab, const SamplingOptions& options, std::mt19937_64& rng) {
  if (options.temperature <= 0.0f) {
    return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
  }
  // Candidates sorted by logit, descending; top-k then top-p (nucleus) truncation.
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  int keep = vocab;
  if (options.top_k > 0 && options.top_k < vocab) keep = options.top_k;
  std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  order.resize(keep);
  std::vector<double> probs(keep);
  const double max_logit = logits[order[0]];
  double sum = 0.0;
  for (int i = 0; i < keep; ++i) {
    probs[i] = std::exp((logits[order[i]] - max_logit) / options.temperature);
    sum += probs[i];
  }
  for (double& p : probs) p /= sum;
  if (options.top_p < 1.0f) {
    double cumulative = 0.0;
    int cut = keep;
    for (int i = 0; i < keep; ++i) {
      cumulative += probs[i];
      if (cumulative >= options.top_p) {
        cut = i + 1;
        break;
      }
    }
    probs.resize(cut);
    order.resize(cut);
  }
  std::discrete_distribution<int> pick(probs.begin(), probs.end());
  return order[pick(rng)];
}

double GenerateResult::prompt_tokens_per_s() const {
  return prompt_seconds > 0 ? prompt_tokens.size() / prompt_seconds : 0.0;
}

double GenerateResult::tokens_per_s() const {
  // The first generated token comes from the prompt pass; the rest are decode steps.
  const size_t decoded = tokens.empty() ? 0 : tokens.size() - 1;
  return decode_seconds > 0 ? decoded / decode_seconds : 0.0;
}

Expected<GenerateResult> generate(const LlamaModel& model, const Tokenizer& tokenizer,
                                  const std::vector<int32_t>& prompt_tokens, const GenerateOptions& options,
                                  ThreadPool& pool) {
  using Clock = std::chrono::steady_clock;
  if (prompt_tokens.empty()) return make_error("generate: the prompt has no tokens");
  GenerateResult result;
  result.prompt_tokens = prompt_tokens;
  const int vocab = model.config().vocab_size;
  const int capacity = static_cast<int>(prompt_tokens.size()) + options.max_new_tokens;
  if (capacity > model.config().max_seq_len) {
    return make_error("generate: prompt ({}) + new tokens ({}) exceed the model context {}", prompt_tokens.size(),
                      options.max_new_tokens, model.config().max_seq_len);
  }
  LB_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, model.make_cache(capacity, options.kv_cache));
  result.kv_bytes_per_token = cache->bytes_per_token();
  result.kv_bytes_allocated = cache->allocated_bytes();
  std::vector<float> logits(vocab);
  std::mt19937_64 rng(options.sampling.seed);
  ForwardOptions last_only;
  last_only.all_logits = false;

  auto t0 = Clock::now();
  LB_RETURN_IF_ERROR(model.forward(prompt_tokens.data(), static_cast<int>(prompt_tokens.size()), 0, *cache,
                                   logits.data(), pool, last_only));
  auto t1 = Clock::now();
  result.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  int pos = static_cast<int>(prompt_tokens.size());
  for (int i = 0; i < options.max_new_tokens; ++i) {
    const int32_t next = sample_token(logits.data(), vocab, options.sampling, rng);
    result.tokens.push_back(next);
    if (options.stop_at_eos && next == tokenizer.eos_id()) break;
    if (i + 1 == options.max_new_tokens) break;
    LB_RETURN_IF_ERROR(model.forward(&next, 1, pos, *cache, logits.data(), pool, last_only));
    ++pos;
  }
  result.decode_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return result;
}

}  // namespace lowbit
