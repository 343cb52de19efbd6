// PTQ1.61's quantization preprocessing, "restorative LoRA" (Zhao et al. 2025,
// section 4.3): the pretrained weights are changed before quantization so that
// per-channel extremely low-bit PTQ finds them easier. The paper's three steps:
//   1. quantize the model (its first PTQ: `lowbit quantize MODEL --recipe w1p6-ptq161`);
//   2. train LoRA adapters on the quantized model, its weights frozen, on the
//      language-model loss of calibration text, so that they restore what
//      quantization lost (train/lora_training.h);
//   3. merge the adapters into the *pretrained* weights, W' = W + s B A, and run the
//      PTQ again on W' (`lowbit quantize MERGED --recipe w1p6-ptq161`).
// restorative_lora() does step 2 and writes W' as an FP32 lowbit model file
// (every tensor but the decoder linears as MODEL has it), the input of step 3.
// The quantized model must be in MODEL's basis (no rotation) and quantize weights
// only (no activation quantizers): training runs on its dequantized FP32 weights.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "model/model_source.h"
#include "pipeline/calibration.h"
#include "pipeline/quantize_pipeline.h"
#include "train/lora_training.h"

namespace lowbit {

struct RestoreOptions {
  std::string model_path;      // the pretrained model (FP weights): W
  std::string quantized_path;  // its quantization (a lowbit model file): the frozen base of the training
  std::string output_path;     // W + s B A, an FP32 lowbit model file
  LoadOptions load;            // MODEL's tokenizer
  std::string calib_path;      // the training text
  CalibrationOptions calibration;  // windows (n_samples, seq_len, seed); BOS as quantize's auto
  LoraTrainOptions train;
  int threads = 2;
  bool progress = true;
};

struct RestoreReport {
  int64_t adapter_params = 0;
  int n_windows = 0, seq_len = 0;
  // Mean next-token loss (nats) on the training windows.
  double loss_pretrained = 0.0;       // W
  double loss_quantized = 0.0;        // Q(W)
  double loss_restored = 0.0;         // Q(W) + s B A
  LoraTrainReport train;
  QuantizeReport written;
};

Expected<RestoreReport> restorative_lora(const RestoreOptions& options);

}  // namespace lowbit
