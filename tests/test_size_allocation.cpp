// Format allocation under a size budget (quant/size_allocation.h). Small
// instances against brute-force enumeration (the exact DP must find the
// optimum); instances too large for the exact DP against the LP lower bound,
// whose gap the algorithm keeps within one item's loss spread; the edge cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "quant/size_allocation.h"

namespace lowbit {
namespace {

using Items = std::vector<AllocationItem>;

// The least loss of any allocation within the budget, by enumerating all; none
// when even the smallest choices do not fit.
std::optional<double> brute_force(const Items& items, uint64_t budget) {
  std::optional<double> best;
  std::vector<size_t> pick(items.size(), 0);
  for (;;) {
    uint64_t bytes = 0;
    double loss = 0.0;
    for (size_t i = 0; i < items.size(); ++i) {
      bytes += items[i].choices[pick[i]].bytes;
      loss += items[i].choices[pick[i]].loss;
    }
    if (bytes <= budget && (!best || loss < *best)) best = loss;
    size_t i = 0;
    while (i < items.size() && ++pick[i] == items[i].choices.size()) pick[i++] = 0;
    if (i == items.size()) return best;
  }
}

// [Σ_i min_j w_ij, Σ_i max_j w_ij]: the bytes an allocation can have.
std::pair<uint64_t, uint64_t> byte_range(const Items& items) {
  uint64_t lo = 0, hi = 0;
  for (const auto& it : items) {
    const auto [min, max] = std::minmax_element(it.choices.begin(), it.choices.end(),
                                                [](const auto& x, const auto& y) { return x.bytes < y.bytes; });
    lo += min->bytes;
    hi += max->bytes;
  }
  return {lo, hi};
}

// max_i (max_j l_ij − min_j l_ij): the gap the inexact path guarantees.
double max_loss_spread(const Items& items) {
  double spread = 0.0;
  for (const auto& it : items) {
    double lo = it.choices[0].loss, hi = lo;
    for (const auto& c : it.choices) {
      lo = std::min(lo, c.loss);
      hi = std::max(hi, c.loss);
    }
    spread = std::max(spread, hi - lo);
  }
  return spread;
}

// The allocation's choice indices are in range and its bytes and loss are their sums.
void expect_consistent(const Items& items, const Allocation& a) {
  ASSERT_EQ(a.choice.size(), items.size());
  uint64_t bytes = 0;
  double loss = 0.0;
  for (size_t i = 0; i < items.size(); ++i) {
    ASSERT_GE(a.choice[i], 0);
    ASSERT_LT(a.choice[i], static_cast<int>(items[i].choices.size()));
    bytes += items[i].choices[a.choice[i]].bytes;
    loss += items[i].choices[a.choice[i]].loss;
  }
  EXPECT_EQ(a.bytes, bytes);
  EXPECT_EQ(a.loss, loss);
}

// 2–6 items with 1–5 choices of 1–40 bytes; losses either small integers
// (ties, zeros) or continuous.
Items small_instance(std::mt19937_64& rng) {
  const int n = std::uniform_int_distribution<int>(2, 6)(rng);
  const bool integer_losses = rng() % 2 == 0;
  Items items(n);
  for (auto& it : items) {
    const int k = std::uniform_int_distribution<int>(1, 5)(rng);
    for (int j = 0; j < k; ++j) {
      AllocationChoice c;
      c.bytes = std::uniform_int_distribution<uint64_t>(1, 40)(rng);
      c.loss = integer_losses ? static_cast<double>(rng() % 4) : std::uniform_real_distribution<double>(0, 1)(rng);
      it.choices.push_back(c);
    }
  }
  return items;
}

TEST(SizeAllocation, SmallInstancesMatchBruteForce) {
  std::mt19937_64 rng(20240601);
  int feasible = 0;
  for (int trial = 0; trial < 400; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    const Items items = small_instance(rng);
    const uint64_t budget = std::uniform_int_distribution<uint64_t>(0, byte_range(items).second + 5)(rng);
    const std::optional<double> best = brute_force(items, budget);
    const auto a = allocate_min_loss(items, budget);
    ASSERT_EQ(a.ok(), best.has_value()) << (a.ok() ? "" : a.status().message());
    if (!best) continue;
    ++feasible;
    expect_consistent(items, a.value());
    EXPECT_LE(a->bytes, budget);
    EXPECT_NEAR(a->loss, *best, 1e-12);
    EXPECT_TRUE(a->exact);
    EXPECT_EQ(a->lower_bound, a->loss);
    const auto bound = lagrangian_lower_bound(items, budget);
    ASSERT_TRUE(bound.ok());
    EXPECT_LE(bound.value(), *best + 1e-12);
  }
  EXPECT_GE(feasible, 200);
}

// Few items with bytes so large that items × (B' + 1) > 2^26: the coarse DP
// and repair, checked against enumeration and the lower bound.
TEST(SizeAllocation, CoarsePathAgainstBruteForce) {
  std::mt19937_64 rng(77);
  int coarse = 0;
  for (int trial = 0; trial < 60; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    // Bytes ascending with loss descending, so every choice is useful (and
    // the least-loss choices do not fit) more often than not.
    Items items(6);
    for (auto& it : items) {
      std::vector<uint64_t> bytes(5);
      std::vector<double> loss(5);
      for (int j = 0; j < 5; ++j) {
        bytes[j] = std::uniform_int_distribution<uint64_t>(10'000'000, 100'000'000)(rng);
        loss[j] = std::uniform_real_distribution<double>(0, 1)(rng);
      }
      std::sort(bytes.begin(), bytes.end());
      std::sort(loss.rbegin(), loss.rend());
      for (int j = 0; j < 5; ++j) it.choices.push_back({bytes[j], loss[j]});
    }
    const auto [lo, hi] = byte_range(items);
    const uint64_t budget = std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
    const double best = brute_force(items, budget).value();
    const auto a = allocate_min_loss(items, budget);
    ASSERT_TRUE(a.ok()) << a.status().message();
    expect_consistent(items, a.value());
    EXPECT_LE(a->bytes, budget);
    EXPECT_GE(a->loss, best - 1e-12);
    EXPECT_LE(a->lower_bound, best + 1e-12);
    EXPECT_LE(a->loss - a->lower_bound, max_loss_spread(items) + 1e-12);
    coarse += !a->exact;
  }
  EXPECT_GE(coarse, 50);
}

// 200 tensors × 12 formats. `ladder`: bits per weight 2..16 with a loss that
// falls like 4^−bits, scaled per tensor, plus noise that makes some formats
// dominated. Otherwise bytes and loss uniformly random (most choices dominated).
Items large_instance(uint64_t seed, bool ladder) {
  std::mt19937_64 rng(seed);
  const double bits[12] = {2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 8.0, 16.0};
  Items items(200);
  for (auto& it : items) {
    const double params = std::uniform_real_distribution<double>(400'000, 500'000)(rng);
    const double sensitivity = std::exp(std::normal_distribution<double>(0, 1.5)(rng));
    for (int j = 0; j < 12; ++j) {
      AllocationChoice c;
      if (ladder) {
        c.bytes = static_cast<uint64_t>(params * bits[j] / 8.0);
        c.loss = sensitivity * std::pow(4.0, -bits[j]) * std::uniform_real_distribution<double>(0.7, 1.3)(rng);
      } else {
        c.bytes = std::uniform_int_distribution<uint64_t>(100'000, 1'000'000)(rng);
        c.loss = std::uniform_real_distribution<double>(0, 1)(rng);
      }
      it.choices.push_back(c);
    }
  }
  return items;
}

TEST(SizeAllocation, LargeInstancesFitTheBudgetNearTheBound) {
  const uint64_t budget = 100'000'000;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    for (bool ladder : {false, true}) {
      SCOPED_TRACE("seed " + std::to_string(seed) + (ladder ? " ladder" : " uniform"));
      const Items items = large_instance(seed, ladder);
      ASSERT_LT(byte_range(items).first, budget);
      ASSERT_GT(byte_range(items).second, budget);
      const auto a = allocate_min_loss(items, budget);
      ASSERT_TRUE(a.ok()) << a.status().message();
      expect_consistent(items, a.value());
      EXPECT_FALSE(a->exact);
      EXPECT_LE(a->bytes, budget);
      EXPECT_GE(a->loss, a->lower_bound - 1e-9);
      // The returned allocation is no worse than the LP solution without its
      // fractional edge, which is within that edge's loss drop of the bound.
      EXPECT_LE(a->loss - a->lower_bound, max_loss_spread(items) + 1e-9);
      // That bound is loose (spread 1 to 7 against losses 0.004 to 18); the
      // measured relative gap is 0.04% to 0.22% on these eight.
      EXPECT_LT((a->loss - a->lower_bound) / a->loss, 0.005);
      EXPECT_EQ(lagrangian_lower_bound(items, budget).value(), a->lower_bound);
    }
  }
  const Items items = large_instance(1, true);
  EXPECT_EQ(allocate_min_loss(items, budget)->choice, allocate_min_loss(items, budget)->choice);  // deterministic
}

TEST(SizeAllocation, BudgetBelowMinimumNamesTheRange) {
  const Items items = {{{{100, 1.0}, {300, 0.5}}}, {{{40, 2.0}, {20, 3.0}, {90, 0.0}}}};
  const auto a = allocate_min_loss(items, 119);  // min 100 + 20 = 120, max 300 + 90 = 390
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("120"), std::string::npos) << a.status().message();
  EXPECT_NE(a.status().message().find("390"), std::string::npos) << a.status().message();
  EXPECT_FALSE(lagrangian_lower_bound(items, 119).ok());
  EXPECT_TRUE(allocate_min_loss(items, 120).ok());
}

TEST(SizeAllocation, LargerBudgetNeverGivesLargerLoss) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    const Items items = small_instance(rng);
    double previous = std::numeric_limits<double>::infinity();
    const auto [lo, hi] = byte_range(items);
    for (uint64_t budget = lo; budget <= hi + 1; ++budget) {
      const auto a = allocate_min_loss(items, budget);
      ASSERT_TRUE(a.ok());
      EXPECT_LE(a->loss, previous) << "trial " << trial << " budget " << budget;
      previous = a->loss;
    }
  }
  // On the coarse path it is not guaranteed (the byte unit changes with the
  // budget), but holds here; 101 budgets 1e8 ± 5% by 1e5 held too.
  const Items items = large_instance(3, true);
  double previous = std::numeric_limits<double>::infinity();
  for (uint64_t budget = 99'000'000; budget <= 101'000'000; budget += 500'000) {
    const auto a = allocate_min_loss(items, budget);
    ASSERT_TRUE(a.ok());
    EXPECT_LE(a->loss, previous) << "budget " << budget;
    previous = a->loss;
  }
}

TEST(SizeAllocation, EdgeCases) {
  // One item: the least loss that fits.
  const Items one = {{{{10, 3.0}, {20, 2.0}, {30, 1.0}}}};
  EXPECT_EQ(allocate_min_loss(one, 25)->choice, std::vector<int>{1});
  EXPECT_EQ(allocate_min_loss(one, 30)->choice, std::vector<int>{2});
  // Equal bytes: the lower loss, and of equal losses the lower index.
  const Items same = {{{{10, 2.0}, {10, 1.0}, {10, 1.0}}}};
  EXPECT_EQ(allocate_min_loss(same, 10)->choice, std::vector<int>{1});
  // Zero losses: a zero-loss choice that fits, with the fewest bytes among them.
  const Items zero = {{{{5, 0.0}, {8, 0.0}}}, {{{3, 1.0}, {6, 0.0}}}};
  const auto z = allocate_min_loss(zero, 11);
  EXPECT_EQ(z->choice, (std::vector<int>{0, 1}));
  EXPECT_EQ(z->loss, 0.0);
  EXPECT_EQ(z->bytes, 11u);
  // Budget exactly the minimum: the smallest choices (the better of two equal ones).
  const Items tight = {{{{7, 1.0}, {4, 5.0}, {4, 3.0}}}, {{{2, 1.0}, {9, 0.5}}}};
  const auto t = allocate_min_loss(tight, 6);
  EXPECT_EQ(t->choice, (std::vector<int>{2, 0}));
  EXPECT_EQ(t->bytes, 6u);
  EXPECT_EQ(t->lower_bound, t->loss);
  // No items: nothing to choose, within any budget.
  const auto none = allocate_min_loss({}, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->choice.empty());
  // Refused: an item without choices, a loss that is not finite.
  EXPECT_FALSE(allocate_min_loss({{{{1, 1.0}}}, {}}, 100).ok());
  EXPECT_FALSE(allocate_min_loss({{{{1, std::nan("")}}}}, 100).ok());
}

}  // namespace
}  // namespace lowbit
