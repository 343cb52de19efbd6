// LoRA adapters (Hu et al. 2021) on the seven linears of every decoder layer,
// the trainable part of PTQ1.61's restorative LoRA (pipeline/restorative_lora.h):
//   y = x Wᵀ + s · (x Aᵀ) Bᵀ,   A [r, in], B [out, r], s = alpha / r
// A starts uniform in ±1/sqrt(in) (a seeded stream, so a seed gives the same
// adapters everywhere) and B at 0, so an untrained adapter changes nothing and
// the first gradient reaches B only (PEFT's initialisation).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace lowbit {

// An adapter; a linear without one has empty a and b (the linear is left as it is).
struct LoraMatrix {
  int64_t in = 0, out = 0;
  std::vector<float> a;  // [r, in]
  std::vector<float> b;  // [out, r]

  bool active() const { return !a.empty(); }
};

struct LoraAdapters {
  int rank = 0;
  float scale = 1.0f;  // s = alpha / r
  // [n_layers][7]: the linears in DecoderBlock::kLinearSuffixes order (q, k, v, o, gate, up, down).
  std::vector<std::array<LoraMatrix, 7>> layers;

  int64_t n_parameters() const;
};

// Adapters of rank r, initialised as above from `seed`, on every linear for which
// target(layer, k) is true (every linear when target is empty).
LoraAdapters make_lora_adapters(const ModelConfig& c, int rank, float alpha, uint64_t seed,
                                const std::function<bool(int layer, int k)>& target = {});
// The same shapes, every value 0 (gradients and optimizer moments).
LoraAdapters zero_lora_like(const LoraAdapters& like);

// W += s · B A for every adapted linear of layer `index` (shapes as make_lora_adapters gave).
void merge_lora_layer(const LoraAdapters& lora, int index, LayerWeights& layer);

}  // namespace lowbit
