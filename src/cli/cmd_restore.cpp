// `lowbit restore MODEL --quantized Q.lowbit --calib FILE -o MERGED.lowbit [--rank R] [--alpha A] [--steps N]
//                [--windows-per-step W] [--lr LR] [--calib-samples N] [--calib-len L] [--seed S] [-t T] [--json F]`:
// PTQ1.61's quantization preprocessing (pipeline/restorative_lora.h). LoRA adapters are
// trained on Q (a weight-only quantization of MODEL, its weights frozen) to restore
// the language-model loss on the calibration windows, then merged into MODEL's
// weights; MERGED is then quantized again with the same recipe.
#include "cli/commands.h"
#include "pipeline/restorative_lora.h"

namespace lowbit::cli {
namespace {

struct RestoreFlags {
  std::string model_path, tokenizer_path, quantized_path, calib_path, output_path, json_path;
  int calib_samples = 32;
  int calib_len = 256;
  uint64_t seed = 0;
  LoraTrainOptions train;
  int threads = 2;
  ProgressFlags progress;
};

nlohmann::json report_json(const RestoreFlags& f, const RestoreReport& r) {
  return {{"model", f.model_path},
          {"quantized", f.quantized_path},
          {"output", f.output_path},
          {"calib", {{"path", f.calib_path}, {"n_samples", r.n_windows}, {"seq_len", r.seq_len}, {"seed", f.seed}}},
          {"rank", f.train.rank},
          {"alpha", f.train.alpha},
          {"steps", f.train.steps},
          {"windows_per_step", f.train.windows_per_step},
          {"lr", f.train.lr},
          {"adapter_params", r.adapter_params},
          {"loss_pretrained", r.loss_pretrained},
          {"loss_quantized", r.loss_quantized},
          {"loss_restored", r.loss_restored},
          {"step_loss", r.train.step_loss},
          {"train_seconds", r.train.seconds},
          {"file_bytes", r.written.file_bytes}};
}

Status run_restore(const RestoreFlags& f) {
  if (f.model_path.empty()) return make_error("restore: MODEL is required");
  if (f.quantized_path.empty()) return make_error("restore: --quantized Q.lowbit is required (MODEL quantized once)");
  if (f.calib_path.empty()) return make_error("restore: --calib FILE is required (the training text)");
  if (f.output_path.empty()) return make_error("restore: -o OUT is required");
  LB_RETURN_IF_ERROR(check_output_file("-o", f.output_path));
  LB_RETURN_IF_ERROR(check_output_file("--json", f.json_path));
  configure_threads(f.threads);
  RestoreOptions o;
  o.model_path = f.model_path;
  o.load.tokenizer_path = f.tokenizer_path;
  o.quantized_path = f.quantized_path;
  o.output_path = f.output_path;
  o.calib_path = f.calib_path;
  o.calibration.n_samples = f.calib_samples;
  o.calibration.seq_len = f.calib_len;
  o.calibration.seed = f.seed;
  o.train = f.train;
  o.threads = f.threads;
  o.progress = show_progress(f.progress);
  LB_ASSIGN_OR_RETURN(RestoreReport r, restorative_lora(o));
  std::printf("restore: loss on %d x %d calibration tokens: pretrained %.4f, quantized %.4f, quantized + LoRA %.4f "
              "(%lld adapter parameters, rank %d, %d steps, %.1f s)\n",
              r.n_windows, r.seq_len, r.loss_pretrained, r.loss_quantized, r.loss_restored,
              static_cast<long long>(r.adapter_params), f.train.rank, f.train.steps, r.train.seconds);
  std::printf("wrote %s (%.1f MB): the pretrained weights + s B A, FP32; quantize it again with the recipe of %s\n",
              f.output_path.c_str(), static_cast<double>(r.written.file_bytes) / 1e6, f.quantized_path.c_str());
  return write_json_report(f.json_path, report_json(f, r));
}

}  // namespace

void register_restore(CLI::App& root, CommandRunner& runner) {
  auto flags = std::make_shared<RestoreFlags>();
  CLI::App* app = root.add_subcommand(
      "restore", "PTQ1.61 preprocessing: train LoRA on a quantized model, merge it into the pretrained weights");
  app->add_option("model", flags->model_path, "The pretrained model (.gguf, Hugging Face folder, lowbit file)");
  app->add_option("--tokenizer", flags->tokenizer_path, "Tokenizer file for MODEL")->check(CLI::ExistingFile);
  app->add_option("--quantized", flags->quantized_path, "MODEL quantized once (a weight-only lowbit model file)")
      ->check(CLI::ExistingFile);
  app->add_option("--calib", flags->calib_path, "Training text or JSONL")->check(CLI::ExistingFile);
  app->add_option("--calib-samples", flags->calib_samples, "Training windows")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  app->add_option("--calib-len", flags->calib_len, "Tokens per window")->check(CLI::Range(2, 1 << 16))->capture_default_str();
  app->add_option("--seed", flags->seed, "Seed of the windows and of the adapters' initial A")->capture_default_str();
  app->add_option("--rank", flags->train.rank, "LoRA rank r")->check(CLI::Range(1, 4096))->capture_default_str();
  app->add_option("--alpha", flags->train.alpha, "LoRA alpha (scale = alpha / r)")
      ->check(CLI::Range(1e-6, 1e6))
      ->capture_default_str();
  app->add_option("--steps", flags->train.steps, "Adam steps")->check(CLI::Range(1, 1 << 24))->capture_default_str();
  app->add_option("--windows-per-step", flags->train.windows_per_step, "Windows per step (the batch)")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  app->add_option("--lr", flags->train.lr, "Peak learning rate (5 % warm-up, then linear decay to 0)")
      ->check(CLI::Range(1e-9, 1.0))
      ->capture_default_str();
  app->add_option("-t,--threads", flags->threads, "Threads")->check(CLI::Range(1, 256))->capture_default_str();
  app->add_option("-o,--output", flags->output_path, "Output: the merged FP32 lowbit model file");
  app->add_option("--json", flags->json_path, "Write a JSON report (losses, per-step loss, time)");
  add_progress_flags(*app, flags->progress);
  app->callback([flags, &runner] {
    flags->train.seed = flags->seed;
    runner.run = [flags] { return run_restore(*flags); };
  });
}

}  // namespace lowbit::cli
