// A size budget turned into per-tensor formats (issue 15): the candidate of every
// tensor that minimises the predicted KL divergence Σ_t KLD_t(c_t) of a
// sensitivity table (pipeline/sensitivity.h) subject to the stored bytes
// Σ_t bytes_t(c_t) + fixed ≤ budget, a multiple-choice knapsack
// (quant/size_allocation.h). Fractional bits per weight (3.25, 4.5, ...) come from
// the mixture (Q-Palette's point). The result is a recipe whose one rule per
// tensor reproduces the model (`lowbit quantize --recipe` on it).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "pipeline/sensitivity.h"
#include "pipeline/size_menu.h"

namespace lowbit {

// The sizes a table can reach: all tensors at their smallest candidate, and the
// model in FP16 (norms FP32), both with the fixed bytes.
struct BudgetRange {
  uint64_t min_bytes = 0;
  uint64_t max_bytes = 0;
  double min_bpw = 0.0;
  double max_bpw = 0.0;
};
BudgetRange budget_range(const SensitivityTable& table);

// The budget in bytes of every stored tensor: --target-size MB (1 MB = 10^6 bytes)
// or --target-bpw (bits over every stored parameter), exactly one of them. Error
// naming the flag and the achievable range outside [min, FP16].
Expected<uint64_t> budget_bytes(const SensitivityTable& table, std::optional<double> target_mb,
                                std::optional<double> target_bpw);

struct BudgetAllocation {
  uint64_t budget_bytes = 0;
  uint64_t bytes = 0;           // Σ chosen bytes + fixed
  double bits_per_weight = 0.0;
  double predicted_kld = 0.0;
  double lower_bound = 0.0;     // of the predicted KLD (Lagrangian) when the knapsack was not solved exactly
  bool exact = true;
  std::vector<int> choice;      // per table tensor: index into its costs
  std::map<std::string, int> format_counts;  // format -> tensors
  nlohmann::json recipe;        // one rule per tensor
};

// The allocation (bytes, predicted KLD, recipe) of given choices, one per table tensor.
BudgetAllocation allocation_of(const SensitivityTable& table, const SizeMenu& menu, const std::vector<int>& choice,
                               const std::string& recipe_name, const std::string& what);

// A uniform recipe in the menu's terms: every tensor at candidate `name`, or where
// its format cannot hold the shape at the next candidate in menu order that can
// (as llama.cpp falls back from q4_K to q5_0 on 576-wide rows).
Expected<std::vector<int>> uniform_choice(const SensitivityTable& table, const SizeMenu& menu, const std::string& name);

Expected<BudgetAllocation> allocate_budget(const SensitivityTable& table, const SizeMenu& menu, uint64_t budget,
                                           const std::string& recipe_name);

}  // namespace lowbit
