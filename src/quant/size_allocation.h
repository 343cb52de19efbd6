// Per-tensor format allocation under a size budget: each tensor i has candidate
// formats j with exact stored bytes w_ij and a predicted loss l_ij (a Hessian
// trace times the format's error, as in HAWQ-V2, or a measured loss, as in
// AdaQuant); pick one format per tensor to
//
//   minimise Σ_i l_i,x(i)   subject to   Σ_i w_i,x(i) ≤ budget.
//
// This is the multiple-choice knapsack problem (NP-hard, but pseudo-polynomial).
// Choices that another choice of the same tensor dominates (more bytes, loss
// not lower) are dropped first; they are never needed.
//
// Solving, with m_i = min_j w_ij and B' = budget − Σ m_i (bytes above the
// smallest choices):
//  - Exact dynamic programming over bytes, dp_i[c] = min_j dp_{i−1}[c − w'_ij] + l_ij
//    with w'_ij = w_ij − m_i, when items × (B' + 1) ≤ 2^26 cells. exact = true,
//    lower_bound = loss.
//  - Otherwise the same DP on a coarse byte unit u = ceil(B' / C) (C ≈ 2^17
//    cells per item): bytes rounded up to units, the budget rounded down, so the
//    result fits the true budget to the byte. Then a greedy repair with exact
//    bytes: repeatedly take the single upgrade with the largest loss decrease
//    per extra byte that still fits. The rounding of the LP relaxation (below)
//    is repaired the same way and the better of the two is returned, so
//    loss − lower_bound ≤ max_i (max_j l_ij − min_j l_ij): one tensor's loss
//    spread. exact = false.
//
// lower_bound is the value of the LP relaxation over each tensor's lower convex
// hull of (bytes, loss), which equals the Lagrangian dual
// max_λ≥0 Σ_i min_j (l_ij + λ w_ij) − λ budget (Sinha & Zoltners 1979): no
// allocation within the budget has a smaller loss. It is computed greedily:
// start from the smallest choices and take hull segments in order of loss
// decrease per byte while they fit, the last one fractionally.
//
// Everything is deterministic: ties go to the choice with fewer bytes, then to
// the lower item and choice index.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace lowbit {

// One candidate format of one tensor: its exact stored bytes and predicted loss.
struct AllocationChoice {
  uint64_t bytes = 0;
  double loss = 0.0;
};

// One tensor; at least one choice.
struct AllocationItem {
  std::vector<AllocationChoice> choices;
};

struct Allocation {
  std::vector<int> choice;  // [items] index into that item's choices
  uint64_t bytes = 0;       // Σ bytes of the chosen choices ≤ budget
  double loss = 0.0;        // Σ loss of the chosen choices
  bool exact = true;        // proven optimal (exact DP)
  double lower_bound = 0;   // no allocation within the budget has less loss
};

// Minimises Σ loss subject to Σ bytes ≤ budget_bytes, one choice per item.
// Error (naming the achievable range [Σ min bytes, Σ max bytes]) when even the
// smallest choices exceed the budget, and for an item without choices or a
// loss that is not finite.
Expected<Allocation> allocate_min_loss(const std::vector<AllocationItem>& items, uint64_t budget_bytes);

// The LP-relaxation / Lagrangian lower bound on the loss of any allocation
// within budget_bytes (see above); the same errors as allocate_min_loss.
Expected<double> lagrangian_lower_bound(const std::vector<AllocationItem>& items, uint64_t budget_bytes);

}  // namespace lowbit
