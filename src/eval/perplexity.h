// Perplexity and KL divergence over a tokenized text, following llama.cpp's
// perplexity tool (protocol "llamacpp") or the GPTQ/QuaRot WikiText-2 convention
// (protocol "gptq").
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

enum class PplProtocol {
  // Text tokenized once (BOS first if the vocab adds one), non-overlapping chunks of
  // ctx tokens, the first token of each chunk set to BOS, only the second half of
  // each chunk scored.
  kLlamaCpp,
  // Text tokenized once without BOS, non-overlapping windows of ctx tokens, every
  // position after the first scored.
  kGptq,
};

Expected<PplProtocol> parse_ppl_protocol(const std::string& name);
const char* ppl_protocol_name(PplProtocol protocol);

struct PplOptions {
  int ctx = 512;
  PplProtocol protocol = PplProtocol::kLlamaCpp;
  int max_chunks = 0;       // 0: all chunks
  bool add_bos = true;      // llamacpp protocol: the vocab's add_bos flag
  int32_t bos_id = 1;
  bool show_progress = false;
  KvCacheFactory kv_cache;  // the evaluated model's KV cache; empty: FP32 (a base model always uses FP32)
  // Tokens per forward call within a window (0: the whole window at once). A
  // window is then run as consecutive batches through the same cache, so only
  // [batch, vocab] logits are held (at ctx 8192 and vocab 49152 the whole
  // window's logits take 1.5 GiB); later batches read earlier positions back from
  // the cache, as decoding does. With FP32 storage scores equal the one-pass ones
  // to float rounding. A quantized cache is chaotic under float rounding: a
  // product computed in another order (BLAS picks kernels by batch size) can put a
  // value on the other side of a code boundary, and the changed key perturbs the
  // later layers, which flips more codes; scores then differ by an amount like
  // the statistical noise of the quantization (SmolLM2, 8192 tokens, k4v4: PPL
  // 23.713 batched by 512 vs 23.785 in one pass, ± 0.79).
  int batch = 0;
  // When set, receives the logits [vocab] of every scored position in order (chunk
  // by chunk, position by position), after the chunk's forward calls: how ppl
  // --save-logits / --compare-logits (eval/logit_diff.h) see them. An error stops the run.
  std::function<Status(const float* logits)> scored_logits;
};

struct PplResult {
  int chunks = 0;
  int64_t tokens_scored = 0;
  double nll_mean = 0.0;
  double nll_stderr = 0.0;
  double ppl = 0.0;
  double ppl_stderr = 0.0;  // delta method: ppl · stderr(nll)
  // Against a base model (KL(base || model) per scored position).
  bool has_base = false;
  double kld_mean = 0.0;
  double kld_stderr = 0.0;
  double kld_median = 0.0;
  double kld_p99 = 0.0;
  double kld_max = 0.0;
  double top1_agree = 0.0;          // fraction of positions with the same argmax
  double top1_agree_stderr = 0.0;
  double delta_p_mean = 0.0;        // mean of p_model(correct) − p_base(correct)
  double delta_p_stderr = 0.0;
  double base_ppl = 0.0;
  double seconds = 0.0;
  double kv_bytes_per_token = 0.0;  // the evaluated model's cache (KvCache::bytes_per_token)
  uint64_t kv_bytes_allocated = 0;  // its cache for one chunk (KvCache::allocated_bytes)
};

// text_tokens: the text encoded once, without BOS. base may be null.
Expected<PplResult> evaluate_perplexity(const LlamaModel& model, const std::vector<int32_t>& text_tokens,
                                        const PplOptions& options, ThreadPool& pool,
                                        const LlamaModel* base = nullptr);

// Several models scored on the same chunks against one base, which runs once per
// chunk (a Pareto sweep: N models cost N + 1 forward passes, not 2N). FP32 KV
// caches, each window in one pass (options.kv_cache and batch are not used).
// Results in the order of `models`; seconds is the whole run's.
Expected<std::vector<PplResult>> evaluate_perplexity_many(const std::vector<const LlamaModel*>& models,
                                                          const std::vector<int32_t>& text_tokens,
                                                          const PplOptions& options, ThreadPool& pool,
                                                          const LlamaModel& base);

// Splits text at each occurrence of separator; trims surrounding whitespace and
// drops empty pieces.
std::vector<std::string> split_documents(const std::string& text, const std::string& separator);

// Each document encoded with BOS and truncated to max_tokens; mean NLL over all
// next-token predictions of all documents.
Expected<PplResult> evaluate_documents(const LlamaModel& model, const Tokenizer& tokenizer,
                                       const std::vector<std::string>& documents, int max_tokens,
                                       ThreadPool& pool);

}  // namespace lowbit
