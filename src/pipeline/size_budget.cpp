#include "pipeline/size_budget.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "quant/size_allocation.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

double bpw(uint64_t bytes, uint64_t params) {
  return params > 0 ? 8.0 * static_cast<double>(bytes) / static_cast<double>(params) : 0.0;
}

}  // namespace

BudgetRange budget_range(const SensitivityTable& table) {
  BudgetRange r;
  r.min_bytes = table.fixed_bytes;
  for (const TensorSensitivity& t : table.tensors) {
    uint64_t smallest = UINT64_MAX;
    for (const CandidateCost& c : t.costs) smallest = std::min(smallest, c.bytes);
    r.min_bytes += smallest;
  }
  r.max_bytes = table.fp16_bytes;
  r.min_bpw = bpw(r.min_bytes, table.params);
  r.max_bpw = bpw(r.max_bytes, table.params);
  return r;
}

Expected<uint64_t> budget_bytes(const SensitivityTable& table, std::optional<double> target_mb,
                                std::optional<double> target_bpw) {
  if (target_mb.has_value() == target_bpw.has_value()) {
    return make_error("give exactly one of --target-size MB and --target-bpw B");
  }
  const BudgetRange r = budget_range(table);
  const std::string range = fmt::format("{:.3f}-{:.3f} MB, {:.3f}-{:.3f} bits per weight", r.min_bytes / 1e6,
                                        r.max_bytes / 1e6, r.min_bpw, r.max_bpw);
  double bytes = 0.0;
  std::string flag;
  if (target_mb) {
    if (!std::isfinite(*target_mb) || *target_mb <= 0.0) return make_error("--target-size {}: must be a positive number of MB", *target_mb);
    bytes = *target_mb * 1e6;
    flag = fmt::format("--target-size {}", *target_mb);
  } else {
    if (!std::isfinite(*target_bpw) || *target_bpw <= 0.0) return make_error("--target-bpw {}: must be a positive number of bits", *target_bpw);
    bytes = *target_bpw * static_cast<double>(table.params) / 8.0;
    flag = fmt::format("--target-bpw {}", *target_bpw);
  }
  if (bytes < static_cast<double>(r.min_bytes)) {
    return make_error("{}: below the smallest model menu {} can make; achievable: {}", flag, table.menu, range);
  }
  if (bytes > static_cast<double>(r.max_bytes)) {
    return make_error("{}: above the FP16 model; achievable: {}", flag, range);
  }
  return static_cast<uint64_t>(std::floor(bytes));
}

BudgetAllocation allocation_of(const SensitivityTable& table, const SizeMenu& menu, const std::vector<int>& choice,
                               const std::string& recipe_name, const std::string& what) {
  BudgetAllocation out;
  out.bytes = table.fixed_bytes;
  out.choice = choice;
  json rules = json::array();
  for (size_t i = 0; i < table.tensors.size(); ++i) {
    const CandidateCost& c = table.tensors[i].costs[choice[i]];
    out.bytes += c.bytes;
    out.predicted_kld += c.predicted_kld;
    ++out.format_counts[c.rule.format];
    rules.push_back(candidate_rule_json(c.rule, table.tensors[i].name));
  }
  out.budget_bytes = out.bytes;
  out.lower_bound = out.predicted_kld;
  out.bits_per_weight = bpw(out.bytes, table.params);
  std::string mix;
  for (const auto& [format, n] : out.format_counts) mix += fmt::format("{}{} x{}", mix.empty() ? "" : ", ", format, n);
  out.recipe = {{"name", recipe_name},
                {"description", fmt::format("{}: {:.6f} MB ({:.4f} bits per weight) over menu {}, sensitivity {}: {}; "
                                            "predicted KLD {:.5f}",
                                            what, out.bytes / 1e6, out.bits_per_weight, menu.name,
                                            sensitivity_mode_name(table.mode), mix, out.predicted_kld)},
                {"true_sequential", false},
                {"rules", rules},
                {"default", {{"method", "none"}, {"format", "fp16"}}}};
  return out;
}

Expected<std::vector<int>> uniform_choice(const SensitivityTable& table, const SizeMenu& menu, const std::string& name) {
  int wanted = -1;
  for (size_t k = 0; k < menu.candidates.size(); ++k) {
    if (menu.candidates[k].name == name) wanted = static_cast<int>(k);
  }
  if (wanted < 0) return make_error("uniform {}: not a candidate of menu {}", name, menu.name);
  std::vector<int> choice;
  for (const TensorSensitivity& t : table.tensors) {
    int best = -1;  // the first cost whose candidate is at or after `wanted` in menu order
    for (size_t i = 0; i < t.costs.size(); ++i) {
      if (t.costs[i].candidate >= wanted && (best < 0 || t.costs[i].candidate < t.costs[best].candidate)) {
        best = static_cast<int>(i);
      }
    }
    if (best < 0) return make_error("uniform {}: no candidate from {} on holds {}", name, name, t.name);
    choice.push_back(best);
  }
  return choice;
}

Expected<BudgetAllocation> allocate_budget(const SensitivityTable& table, const SizeMenu& menu, uint64_t budget,
                                           const std::string& recipe_name) {
  if (budget < table.fixed_bytes) return make_error("budget {} bytes is below the fixed {} bytes", budget, table.fixed_bytes);
  std::vector<AllocationItem> items;
  for (const TensorSensitivity& t : table.tensors) {
    AllocationItem item;
    for (const CandidateCost& c : t.costs) item.choices.push_back({c.bytes, c.predicted_kld});
    items.push_back(std::move(item));
  }
  LB_ASSIGN_OR_RETURN(Allocation a, allocate_min_loss(items, budget - table.fixed_bytes));
  BudgetAllocation out = allocation_of(table, menu, a.choice, recipe_name,
                                      fmt::format("size budget {:.6f} MB", budget / 1e6));
  out.budget_bytes = budget;
  out.lower_bound = a.lower_bound;
  out.exact = a.exact;
  return out;
}

}  // namespace lowbit
