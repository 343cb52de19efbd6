// KVTuner-style layer-wise precision pairs: measure how much quantizing one
// layer's keys (or values) at b bits, everything else FP32, changes the model's
// next-token distribution on calibration sequences, then pick per layer the
// (key bits, value bits) pair that minimises the summed sensitivity under an
// average-bits budget.
//
// Sensitivity s_K[l][b] = mean over positions of KL(P_fp32 || P_probe), where
// the probe cache quantizes only layer l's keys with the base spec's options at b
// bits (likewise s_V). Treating the errors of layers as additive, the choice
//   minimise Σ_l s_K[l][k_l] + s_V[l][v_l]  subject to  Σ_l (k_l + v_l) <= 2 L B
// is a multiple-choice knapsack, solved exactly by dynamic programming over
// layers on the integer bit total (KVTuner, Li et al. 2025, searches the same
// space with multi-objective optimisation; with additive errors the DP is optimal).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kvcache/kv_spec.h"
#include "model/llama_model.h"

namespace lowbit {

struct KvSensitivity {
  std::vector<int> bits;                  // candidate bit widths, ascending
  std::vector<std::vector<double>> key;   // [layer][candidate] mean KL divergence
  std::vector<std::vector<double>> value; // [layer][candidate]
  nlohmann::json to_json() const;
};

// Runs 1 + 2 · layers · |bits| forward passes over the sequences. The base spec
// gives the element family, granularity, rotation, RoPE placement, sinks,
// residual and outliers; NUQ specs are not tuned (their codebooks depend on the bits).
Expected<KvSensitivity> measure_kv_sensitivity(const LlamaModel& model,
                                               const std::vector<std::vector<int32_t>>& sequences,
                                               const KvSpec& base, const std::vector<int>& bits, ThreadPool& pool);

// Per layer (key bits, value bits) minimising the summed sensitivity with mean
// bits <= average_bits; errors when even the smallest candidate exceeds it.
Expected<std::vector<std::pair<int, int>>> choose_kv_bits(const KvSensitivity& sensitivity, double average_bits);

// The base spec with per-layer bits.
Expected<KvSpec> kv_spec_with_layer_bits(const KvSpec& base, const std::vector<std::pair<int, int>>& bits);

}  // namespace lowbit
