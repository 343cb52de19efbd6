// `lowbit ppl MODEL --text FILE [--ctx N] [--protocol llamacpp|gptq] [--chunks K]
//  [--batch B] [--base MODEL2] [--kv SPEC|FILE [--kv-calib F] [--kv-tune BITS] [--kv-save F]]
//  [--arith exact|llamacpp|bf16|fp8|lmul [--lmul-mantissa M]] [--deterministic]
//  [--save-logits F | --compare-logits F] [--threads T] [--json F]`
// --kv and --arith apply to MODEL only; --base always runs with the FP32 cache and
// exact arithmetic, so with the same file as MODEL the KL divergence measures the
// KV cache (or llama.cpp's arithmetic) alone.
// --arith llamacpp computes as llama.cpp's CPU backend does (llama-perplexity's
// defaults): each linear's input rounded to the vec_dot type of its stored GGUF
// type (cli/common.h ActRuntime), and the KV cache in FP16 unless --kv is given.
// --arith bf16|fp8|lmul computes every decoder linear and the prompt attention's
// products with BF16, FP8 E4M3 or L-Mul products and FP32 sums
// (model/product_arithmetic.h); MODEL's linears must be FP32.
// --deterministic runs MODEL with fixed reduction orders (model/deterministic.h).
// --save-logits records the scored positions' logits; --compare-logits compares
// this run's with a record (eval/logit_diff.h): how far a setting moves them.
#include <cstdio>
#include <optional>
#include <vector>

#include "cli/commands.h"
#include "cli/kv_cli.h"
#include "cli/ppl_report.h"
#include "core/mapped_file.h"
#include "eval/logit_diff.h"
#include "eval/perplexity.h"
#include "model/product_arithmetic.h"

namespace lowbit::cli {
namespace {

struct PplFlags {
  ModelFlags model;
  std::string text_path;
  int ctx = 512;
  std::string protocol = "llamacpp";
  int chunks = 0;
  int batch = 0;
  std::string base_path;
  KvFlags kv;
  std::string arith = "exact";
  int lmul_mantissa = 0;  // 0: not given (3)
  std::string save_logits;
  std::string compare_logits;
};

// The products --arith names, or none for exact and llamacpp.
Expected<std::optional<ProductArithmetic>> product_arithmetic(const PplFlags& f) {
  const ProductKindInfo* kind = find_product_kind(f.arith);
  if (f.lmul_mantissa != 0 && (kind == nullptr || kind->kind != ProductKind::kLmul)) {
    return make_error("--lmul-mantissa {}: goes with --arith lmul (not --arith {})", f.lmul_mantissa, f.arith);
  }
  if (kind == nullptr) return std::optional<ProductArithmetic>();
  return std::optional<ProductArithmetic>(
      ProductArithmetic{kind->kind, f.lmul_mantissa != 0 ? f.lmul_mantissa : 3, active_isa()});
}

Status run_ppl(const PplFlags& f) {
  LB_RETURN_IF_ERROR(check_output_file("--json", f.model.json_path));
  LB_RETURN_IF_ERROR(check_output_file("--kv-save", f.kv.save_path));
  LB_RETURN_IF_ERROR(check_output_file("--save-logits", f.save_logits));
  if (f.model.deterministic && f.arith != "exact") {
    return make_error("--deterministic: runs the exact arithmetic, not --arith {}", f.arith);
  }
  if (f.model.deterministic && !f.kv.spec.empty()) {
    return make_error("--deterministic: runs with the FP32 KV cache, not --kv {}", f.kv.spec);
  }
  configure_threads(f.model.threads);
  LB_ASSIGN_OR_RETURN(PplProtocol protocol, parse_ppl_protocol(f.protocol));
  LB_ASSIGN_OR_RETURN(std::optional<ProductArithmetic> products, product_arithmetic(f));
  LB_ASSIGN_OR_RETURN(std::string text, read_text_file(f.text_path));
  const bool llamacpp = f.arith == "llamacpp";
  ActRuntime act = act_runtime(f.model);
  act.llamacpp_arith = llamacpp;
  LB_ASSIGN_OR_RETURN(RunnableModel m, load_runnable(f.model.model_path, f.model.tokenizer_path, nullptr, act));
  if (products) {
    LB_RETURN_IF_ERROR(attach_product_arithmetic(m.model, *products).with_context("--arith " + f.arith));
    if (f.model.verbose) {
      std::fprintf(stderr, "arith %s: decoder linears and prompt attention with kernel %s\n", f.arith.c_str(),
                   product_kernel_name(*products).c_str());
    }
  }
  std::unique_ptr<RunnableModel> base;
  if (!f.base_path.empty()) {
    auto loaded = load_runnable(f.base_path, f.model.tokenizer_path, nullptr, {f.model.simulate_act, false});
    if (!loaded.ok()) return loaded.status().with_context("--base");
    base = std::make_unique<RunnableModel>(std::move(loaded).value());
  }
  const Tokenizer& tok = *m.loaded.tokenizer;
  auto encoded = tok.encode_checked(text);
  if (!encoded.ok()) return encoded.status().with_context(f.text_path);
  const std::vector<int32_t>& tokens = *encoded;

  PplOptions options;
  options.ctx = f.ctx;
  options.protocol = protocol;
  options.max_chunks = f.chunks;
  options.batch = f.batch;
  options.add_bos = tok.add_bos() && tok.bos_id() >= 0;
  options.bos_id = tok.bos_id();
  options.show_progress = show_progress(f.model.progress);
  if (f.model.verbose) {
    std::fprintf(stderr, "ppl: %s, %zu text tokens, protocol %s, ctx %d, chunks %d, add_bos %d, threads %d%s%s\n",
                 f.text_path.c_str(), tokens.size(), f.protocol.c_str(), f.ctx, f.chunks, options.add_bos,
                 f.model.threads, base ? ", base " : "", f.base_path.c_str());
  }
  ThreadPool pool(f.model.threads);
  KvFlags kv_flags = f.kv;
  if (llamacpp && kv_flags.spec.empty()) kv_flags.spec = "fp16";  // llama.cpp's default cache type
  LB_ASSIGN_OR_RETURN(ResolvedKv kv, resolve_kv(kv_flags, f.model.model_path, m, pool, f.model.verbose));
  options.kv_cache = kv.factory;
  const int vocab = m.model.config().vocab_size;
  std::optional<LogitRecorder> recorder;
  std::optional<LogitComparer> comparer;
  if (!f.save_logits.empty()) {
    LB_ASSIGN_OR_RETURN(LogitRecorder opened, LogitRecorder::create(f.save_logits, vocab));
    recorder.emplace(std::move(opened));
    options.scored_logits = [&](const float* row) { return recorder->add(row).with_context("--save-logits"); };
  } else if (!f.compare_logits.empty()) {
    LB_ASSIGN_OR_RETURN(LogitComparer opened, LogitComparer::open(f.compare_logits, vocab));
    comparer.emplace(std::move(opened));
    options.scored_logits = [&](const float* row) { return comparer->add(row).with_context("--compare-logits"); };
  }
  LB_ASSIGN_OR_RETURN(PplResult r, evaluate_perplexity(m.model, tokens, options, pool, base ? &base->model : nullptr));
  if (recorder) LB_RETURN_IF_ERROR(recorder->commit().with_context("--save-logits " + f.save_logits));

  std::printf("protocol %s, ctx %d, %d chunks, %lld tokens scored, %.1f s\n", f.protocol.c_str(), f.ctx, r.chunks,
              static_cast<long long>(r.tokens_scored), r.seconds);
  std::printf("PPL = %.4f +/- %.5f   (mean NLL %.6f +/- %.6f)\n", r.ppl, r.ppl_stderr, r.nll_mean, r.nll_stderr);
  nlohmann::json report = {
      {"model", f.model.model_path},
      {"text", f.text_path},
      {"protocol", f.protocol},
      {"ctx", f.ctx},
      {"batch", f.batch},
      {"text_tokens", tokens.size()},
      {"threads", f.model.threads},
      {"arith", f.arith},
      {"deterministic", f.model.deterministic},
  };
  if (products && products->kind == ProductKind::kLmul) report["lmul_mantissa"] = products->lmul_mantissa;
  report.update(ppl_metrics_json(r));
  add_kv_report(report, kv, m.model.config(), r.kv_bytes_per_token, r.kv_bytes_allocated);
  std::printf("KV cache %s: %.1f bytes/token (FP32 %.0f), %.2f MiB allocated, peak RSS %.1f MiB\n",
              report["kv"].get<std::string>().c_str(), r.kv_bytes_per_token,
              report["kv_bytes_per_token_fp32"].get<double>(), r.kv_bytes_allocated / 1048576.0,
              peak_rss_bytes() / 1048576.0);
  if (r.has_base) {
    std::printf("base PPL = %.4f\n", r.base_ppl);
    std::printf("KLD: mean %.6f +/- %.6f, median %.6f, p99 %.6f, max %.6f\n", r.kld_mean, r.kld_stderr, r.kld_median,
                r.kld_p99, r.kld_max);
    std::printf("same top-1: %.3f +/- %.3f %%   mean delta p: %.3f +/- %.3f %%\n", 100 * r.top1_agree,
                100 * r.top1_agree_stderr, 100 * r.delta_p_mean, 100 * r.delta_p_stderr);
    report["base"] = f.base_path;
  }
  if (comparer) {
    LB_ASSIGN_OR_RETURN(LogitDiff d, comparer->finish());
    std::printf("logits vs %s: %lld positions, %lld bit-identical; max |delta logit| %.6g; KLD mean %.6g max %.6g; "
                "flipped argmax %lld\n",
                f.compare_logits.c_str(), static_cast<long long>(d.rows), static_cast<long long>(d.identical_rows),
                d.max_abs_delta, d.kld_mean(), d.kld_max, static_cast<long long>(d.flipped_argmax));
    report["compare_logits"] = {{"file", f.compare_logits},
                                {"positions", d.rows},
                                {"identical_positions", d.identical_rows},
                                {"max_abs_delta_logit", d.max_abs_delta},
                                {"kld_mean", d.kld_mean()},
                                {"kld_max", d.kld_max},
                                {"flipped_argmax", d.flipped_argmax}};
  }
  return write_json_report(f.model.json_path, report);
}

}  // namespace

void register_ppl(CLI::App& root, CommandRunner& runner) {
  auto flags = std::make_shared<PplFlags>();
  CLI::App* app = root.add_subcommand("ppl", "Perplexity (and KL divergence to a base model) on a text file");
  add_model_flags(*app, flags->model, true);
  app->add_option("--text", flags->text_path, "Text file to evaluate")->required()->check(CLI::ExistingFile);
  app->add_option("-c,--ctx", flags->ctx, "Tokens per chunk")->check(CLI::Range(2, 1 << 20))->capture_default_str();
  app->add_option("--protocol", flags->protocol, "llamacpp (second half of each chunk, BOS) or gptq (all, no BOS)")
      ->check(CLI::IsMember({"llamacpp", "gptq"}))
      ->capture_default_str();
  app->add_option("--batch", flags->batch,
                  "Tokens per forward call within a chunk (0 = the whole chunk): holds only [batch, vocab] logits; "
                  "later batches read earlier positions from the (quantized) KV cache")
      ->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  app->add_option("--chunks", flags->chunks, "Evaluate at most K chunks (0 = all)")->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  app->add_option("--base", flags->base_path, "Base model for KL divergence, run on the same tokens");
  std::vector<std::string> arith_names = {"exact", "llamacpp"};
  std::string arith_help =
      "Arithmetic of MODEL: exact (FP32 products and cache), llamacpp (as llama.cpp's CPU backend computes: each "
      "linear's input rounded to the activation type llama.cpp pairs with the weight's GGUF type, "
      "Q8_0/Q8_1/Q8_K/F16/BF16, and an FP16 KV cache unless --kv is given), or the decoder linears and prompt "
      "attention of an FP32 MODEL with FP32 sums of products:";
  for (const ProductKindInfo& k : product_kinds()) {
    arith_names.push_back(k.name);
    arith_help += fmt::format(" {} ({})", k.name, k.help);
  }
  app->add_option("--arith", flags->arith, arith_help)->check(CLI::IsMember(arith_names))->capture_default_str();
  app->add_option("--lmul-mantissa", flags->lmul_mantissa,
                  "Mantissa bits m of L-Mul's operands under --arith lmul (default 3; 7: BF16 operands, 23: FP32)")
      ->check(CLI::Range(1, 23));
  add_kv_flags(*app, flags->kv);
  add_kv_attention_flag(*app, flags->kv);
  add_deterministic_flag(*app, flags->model.deterministic);
  auto* save = app->add_option("--save-logits", flags->save_logits,
                               "Record the logits of every scored position (float32, [positions, vocab]) to this file");
  app->add_option("--compare-logits", flags->compare_logits,
                  "Compare this run's logits with a --save-logits record: max |delta logit|, KLD, flipped argmax")
      ->check(CLI::ExistingFile)
      ->excludes(save);
  app->callback([flags, &runner] { runner.run = [flags] { return run_ppl(*flags); }; });
}

}  // namespace lowbit::cli
