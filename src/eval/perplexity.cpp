#include "eval/perplexity.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>

#include "core/progress.h"
#include "eval/metrics.h"

namespace lowbit {
namespace {

// Per scored position: what each metric needs before aggregation.
struct PositionStats {
  double nll = 0.0;
  double base_nll = 0.0;
  double kld = 0.0;
  bool same_top1 = false;
  double delta_p = 0.0;
};

class Accumulator {
 public:
  void add(const PositionStats& s, bool has_base) {
    nll_.add(s.nll);
    if (has_base) {
      base_nll_.add(s.base_nll);
      kld_.add(s.kld);
      klds_.push_back(s.kld);
      top1_.add(s.same_top1 ? 1.0 : 0.0);
      delta_p_.add(s.delta_p);
    }
  }
  PplResult result(bool has_base) const {
    PplResult r;
    r.tokens_scored = nll_.count();
    r.nll_mean = nll_.mean();
    r.nll_stderr = nll_.stderr_of_mean();
    r.ppl = std::exp(r.nll_mean);
    r.ppl_stderr = r.ppl * r.nll_stderr;
    r.has_base = has_base;
    if (has_base) {
      r.base_ppl = std::exp(base_nll_.mean());
      r.kld_mean = kld_.mean();
      r.kld_stderr = kld_.stderr_of_mean();
      r.kld_median = quantile(klds_, 0.5);
      r.kld_p99 = quantile(klds_, 0.99);
      r.kld_max = klds_.empty() ? 0.0 : *std::max_element(klds_.begin(), klds_.end());
      r.top1_agree = top1_.mean();
      r.top1_agree_stderr = top1_.stderr_of_mean();
      r.delta_p_mean = delta_p_.mean();
      r.delta_p_stderr = delta_p_.stderr_of_mean();
    }
    return r;
  }

 private:
  RunningMean nll_, base_nll_, kld_, top1_, delta_p_;
  std::vector<double> klds_;
};

// What the evaluated model's cache reported.
struct CacheStats {
  double bytes_per_token = 0.0;
  uint64_t allocated = 0;
};

// Scores the positions j in [max(first, b0), min(b0 + m, n - 1)) of one sequence
// from rows j - b0 of logits [m, vocab] (and of base_logits, when given) into
// stats[j - first].
void score_rows(const std::vector<int32_t>& tokens, const float* logits, const float* base_logits, int vocab,
                int first, int b0, int m, ThreadPool& pool, std::vector<PositionStats>& stats) {
  const int n = static_cast<int>(tokens.size());
  const int lo = std::max(first, b0), hi = std::min(b0 + m, n - 1);
  if (hi <= lo) return;
  pool.parallel_for(hi - lo, [&](int64_t b, int64_t e, int) {
    std::vector<double> logp, base_logp;
    for (int64_t i = b; i < e; ++i) {
      const int j = lo + static_cast<int>(i);
      const int target = tokens[j + 1];
      log_softmax(logits + static_cast<size_t>(j - b0) * vocab, vocab, logp);
      PositionStats& s = stats[j - first];
      s.nll = -logp[target];
      if (base_logits != nullptr) {
        log_softmax(base_logits + static_cast<size_t>(j - b0) * vocab, vocab, base_logp);
        s.base_nll = -base_logp[target];
        s.kld = kl_divergence(base_logp, logp);
        s.same_top1 = argmax(logp) == argmax(base_logp);
        s.delta_p = std::exp(logp[target]) - std::exp(base_logp[target]);
      }
    }
  });
}

// Scores positions [first, n-1) of one sequence: logits row j predicts tokens[j+1].
// The sequence runs through the model in batches of `batch` tokens (0: all at
// once); the score loop below runs per batch over the rows it produced.
Status score_sequence(const LlamaModel& model, const std::vector<int32_t>& tokens, int first, ThreadPool& pool,
                      const LlamaModel* base, const KvCacheFactory& kv_cache, Accumulator& acc,
                      CacheStats* cache_stats = nullptr, int batch = 0,
                      const std::function<Status(const float*)>& scored_logits = {}) {
  const int n = static_cast<int>(tokens.size());
  const int vocab = model.config().vocab_size;
  const int rows = batch > 0 ? std::min(batch, n) : n;
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);  // [rows, vocab]: positions [b0, b0 + rows)
  std::vector<float> base_logits(base != nullptr ? logits.size() : 0);
  LB_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, model.make_cache(n, kv_cache));
  std::unique_ptr<KvCache> base_cache;
  const int count = std::max(0, n - 1 - first);
  std::vector<PositionStats> stats(count);
  for (int b0 = 0; b0 < n; b0 += rows) {
    const int m = std::min(rows, n - b0);
    LB_RETURN_IF_ERROR(model.forward(tokens.data() + b0, m, b0, *cache, logits.data(), pool));
    if (b0 + m == n) {  // the last batch: free the cache before the base model runs
      if (cache_stats != nullptr) *cache_stats = {cache->bytes_per_token(), cache->allocated_bytes()};
      cache.reset();
    }
    if (base != nullptr) {
      if (base_cache == nullptr) base_cache = base->make_fp32_cache(n);
      LB_RETURN_IF_ERROR(base->forward(tokens.data() + b0, m, b0, *base_cache, base_logits.data(), pool));
    }
    score_rows(tokens, logits.data(), base != nullptr ? base_logits.data() : nullptr, vocab, first, b0, m, pool, stats);
    if (scored_logits) {
      for (int j = std::max(first, b0); j < std::min(b0 + m, n - 1); ++j) {
        LB_RETURN_IF_ERROR(scored_logits(logits.data() + static_cast<size_t>(j - b0) * vocab));
      }
    }
  }
  for (const PositionStats& s : stats) acc.add(s, base != nullptr);
  return Status::ok_status();
}

// The protocol's chunks of a text: n chunks of ctx tokens, scored from `first`.
struct Chunks {
  std::vector<int32_t> tokens;  // the text, BOS first under llamacpp when the vocab adds one
  int n = 0;
  int first = 0;
  bool set_bos = false;  // llamacpp: each chunk's first token becomes BOS

  std::vector<int32_t> chunk(int c, const PplOptions& options) const {
    std::vector<int32_t> out(tokens.begin() + static_cast<int64_t>(c) * options.ctx,
                             tokens.begin() + static_cast<int64_t>(c + 1) * options.ctx);
    if (set_bos) out[0] = options.bos_id;
    return out;
  }
};

Expected<Chunks> make_chunks(const std::vector<int32_t>& text_tokens, const PplOptions& options) {
  Chunks c;
  const bool llamacpp = options.protocol == PplProtocol::kLlamaCpp;
  if (llamacpp && options.add_bos) c.tokens.push_back(options.bos_id);
  c.tokens.insert(c.tokens.end(), text_tokens.begin(), text_tokens.end());
  c.n = static_cast<int>(c.tokens.size() / options.ctx);
  if (c.n == 0) {
    return make_error("the text has {} tokens, fewer than one chunk of --ctx {}", c.tokens.size(), options.ctx);
  }
  if (options.max_chunks > 0) c.n = std::min(c.n, options.max_chunks);
  c.first = llamacpp ? options.ctx / 2 : 0;
  c.set_bos = llamacpp && options.add_bos;
  // Logits row j predicts token j + 1, so a chunk scores rows [first, ctx - 1):
  // ctx - 1 - ctx/2 tokens under llamacpp (its second half), ctx - 1 under gptq.
  // A chunk must score at least one token, and the run two: the standard error of
  // the mean NLL (and of the KLD) is undefined for one sample, and refusing beats
  // printing "+/- 0" (or PPL 1 over no tokens at all).
  const char* protocol = ppl_protocol_name(options.protocol);
  const int per_chunk = options.ctx - 1 - c.first;
  const int min_ctx = llamacpp ? 5 : 3;  // the smallest ctx that scores 2 tokens in one chunk
  if (per_chunk < 1) {
    return make_error("--ctx {}: the {} protocol scores {} of each chunk, no token at this length; use --ctx {} or "
                      "more",
                      options.ctx, protocol, llamacpp ? "the second half (ctx - 1 - ctx/2 tokens)" : "ctx - 1 tokens",
                      min_ctx);
  }
  const int64_t scored = static_cast<int64_t>(c.n) * per_chunk;
  if (scored < 2) {
    return make_error("--ctx {}: {} chunk(s) of the {} protocol score {} token, and the standard error needs at "
                      "least 2; use --ctx {} or more (or more chunks)",
                      options.ctx, c.n, protocol, scored, min_ctx);
  }
  return c;
}

}  // namespace

Expected<PplProtocol> parse_ppl_protocol(const std::string& name) {
  if (name == "llamacpp") return PplProtocol::kLlamaCpp;
  if (name == "gptq") return PplProtocol::kGptq;
  return make_error("--protocol: unknown protocol '{}' (expected llamacpp or gptq)", name);
}

const char* ppl_protocol_name(PplProtocol protocol) {
  return protocol == PplProtocol::kLlamaCpp ? "llamacpp" : "gptq";
}

Expected<PplResult> evaluate_perplexity(const LlamaModel& model, const std::vector<int32_t>& text_tokens,
                                        const PplOptions& options, ThreadPool& pool, const LlamaModel* base) {
  const auto start = std::chrono::steady_clock::now();
  if (options.ctx < 2) return make_error("--ctx must be at least 2, got {}", options.ctx);
  if (options.ctx > model.config().max_seq_len) {
    return make_error("--ctx {} exceeds the model's context length {}", options.ctx, model.config().max_seq_len);
  }
  if (base != nullptr && base->config().vocab_size != model.config().vocab_size) {
    return make_error("--base: vocabulary sizes differ ({} vs {}); KL divergence needs the same tokenizer",
                      base->config().vocab_size, model.config().vocab_size);
  }
  LB_ASSIGN_OR_RETURN(Chunks chunks, make_chunks(text_tokens, options));
  const int n_chunks = chunks.n;
  const int first = chunks.first;

  Accumulator acc;
  CacheStats cache_stats;
  ProgressBar progress("ppl chunk", n_chunks, options.show_progress);
  for (int c = 0; c < n_chunks; ++c) {
    const std::vector<int32_t> chunk = chunks.chunk(c, options);
    LB_RETURN_IF_ERROR(
        score_sequence(model, chunk, first, pool, base, options.kv_cache, acc, &cache_stats, options.batch,
                       options.scored_logits));
    const PplResult partial = acc.result(false);
    progress.update(c + 1, fmt::format("ppl {:.4f}", partial.ppl));
  }
  progress.finish();
  PplResult result = acc.result(base != nullptr);
  result.chunks = n_chunks;
  result.kv_bytes_per_token = cache_stats.bytes_per_token;
  result.kv_bytes_allocated = cache_stats.allocated;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

Expected<std::vector<PplResult>> evaluate_perplexity_many(const std::vector<const LlamaModel*>& models,
                                                          const std::vector<int32_t>& text_tokens,
                                                          const PplOptions& options, ThreadPool& pool,
                                                          const LlamaModel& base) {
  const auto start = std::chrono::steady_clock::now();
  if (options.ctx < 2) return make_error("--ctx must be at least 2, got {}", options.ctx);
  const int vocab = base.config().vocab_size;
  for (const LlamaModel* m : models) {
    if (m->config().vocab_size != vocab) {
      return make_error("vocabulary sizes differ ({} vs the base's {}); KL divergence needs the same tokenizer",
                        m->config().vocab_size, vocab);
    }
    if (options.ctx > m->config().max_seq_len) {
      return make_error("--ctx {} exceeds a model's context length {}", options.ctx, m->config().max_seq_len);
    }
  }
  LB_ASSIGN_OR_RETURN(Chunks chunks, make_chunks(text_tokens, options));
  std::vector<Accumulator> acc(models.size());
  std::vector<float> base_logits(static_cast<size_t>(options.ctx) * vocab);  // [ctx, vocab]
  std::vector<float> logits(base_logits.size());
  ProgressBar progress("ppl chunk", chunks.n, options.show_progress);
  for (int c = 0; c < chunks.n; ++c) {
    const std::vector<int32_t> chunk = chunks.chunk(c, options);
    {
      std::unique_ptr<KvCache> cache = base.make_fp32_cache(options.ctx);
      LB_RETURN_IF_ERROR(base.forward(chunk.data(), options.ctx, 0, *cache, base_logits.data(), pool));
    }
    for (size_t k = 0; k < models.size(); ++k) {
      std::unique_ptr<KvCache> cache = models[k]->make_fp32_cache(options.ctx);
      LB_RETURN_IF_ERROR(models[k]->forward(chunk.data(), options.ctx, 0, *cache, logits.data(), pool));
      std::vector<PositionStats> stats(static_cast<size_t>(std::max(0, options.ctx - 1 - chunks.first)));
      score_rows(chunk, logits.data(), base_logits.data(), vocab, chunks.first, 0, options.ctx, pool, stats);
      for (const PositionStats& s : stats) acc[k].add(s, true);
    }
    progress.update(c + 1);
  }
  progress.finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<PplResult> results;
  for (const Accumulator& a : acc) {
    PplResult r = a.result(true);
    r.chunks = chunks.n;
    r.seconds = seconds;
    results.push_back(r);
  }
  return results;
}

std::vector<std::string> split_documents(const std::string& text, const std::string& separator) {
  std::vector<std::string> docs;
  size_t begin = 0;
  auto push = [&](size_t b, size_t e) {
    while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
    if (e > b) docs.push_back(text.substr(b, e - b));
  };
  while (true) {
    const size_t at = text.find(separator, begin);
    if (at == std::string::npos) {
      push(begin, text.size());
      break;
    }
    push(begin, at);
    begin = at + separator.size();
  }
  return docs;
}

Expected<PplResult> evaluate_documents(const LlamaModel& model, const Tokenizer& tokenizer,
                                       const std::vector<std::string>& documents, int max_tokens,
                                       ThreadPool& pool) {
  Accumulator acc;
  for (const std::string& doc : documents) {
    std::vector<int32_t> tokens{tokenizer.bos_id()};
    const std::vector<int32_t> body = tokenizer.encode(doc);
    tokens.insert(tokens.end(), body.begin(), body.end());
    if (static_cast<int>(tokens.size()) > max_tokens) tokens.resize(max_tokens);
    if (tokens.size() < 2) continue;
    LB_RETURN_IF_ERROR(score_sequence(model, tokens, 0, pool, nullptr, KvCacheFactory(), acc));
  }
  PplResult result = acc.result(false);
  result.chunks = static_cast<int>(documents.size());
  return result;
}

}  // namespace lowbit
