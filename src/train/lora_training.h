// Training LoRA adapters on token windows: Adam (Kingma & Ba 2015) on the mean
// next-token loss (train/decoder_backprop.h) of `windows_per_step` windows per
// step, cycling through the windows in order; the learning rate decays linearly
// from lr to 0 over the steps after a linear warm-up of the first 5 %.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model/weights.h"
#include "train/lora_adapters.h"

namespace lowbit {

struct LoraTrainOptions {
  int rank = 16;
  float alpha = 16.0f;  // s = alpha / rank
  int steps = 100;
  int windows_per_step = 1;
  float lr = 1e-4f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  uint64_t seed = 0;  // the adapters' initial A
  std::function<bool(int layer, int k)> target;  // the linears adapted (make_lora_adapters); empty: all
};

struct LoraTrainReport {
  std::vector<double> step_loss;  // [steps] the mean loss of each step's windows, before its update
  double seconds = 0.0;
};

// windows: [n, seq_len] tokens. progress (may be empty) is called after each step
// with (steps done, that step's loss).
Expected<LoraAdapters> train_lora(const ModelConfig& c, const ModelWeights& base, const std::vector<int32_t>& windows,
                                  int seq_len, const LoraTrainOptions& o, LoraTrainReport* report,
                                  const std::function<void(int, double)>& progress = {});

// The learning rate of step t (0-based) of `steps`.
double lora_learning_rate(const LoraTrainOptions& o, int t);

// The mean loss over the windows under base + lora (no gradient).
Expected<double> lora_mean_loss(const ModelConfig& c, const ModelWeights& base, const LoraAdapters& lora,
                                const std::vector<int32_t>& windows, int seq_len);

}  // namespace lowbit
