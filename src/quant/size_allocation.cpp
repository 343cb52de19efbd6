#include "quant/size_allocation.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lowbit {
namespace {

// The DP's choice table holds at most this many cells (one byte each while an
// item has ≤ 255 useful choices): 64 MiB.
constexpr uint64_t kMaxCells = uint64_t{1} << 26;
// Cells per item of the coarse DP (fewer when many items would overflow kMaxCells).
constexpr uint64_t kCoarseCellsPerItem = uint64_t{1} << 17;

// One item's useful choices (its Pareto front), by bytes ascending; loss
// strictly decreases along it.
struct Front {
  std::vector<int> index;       // [k] index into the item's choices
  std::vector<uint64_t> extra;  // [k] bytes above the item's smallest choice; extra[0] = 0
  std::vector<double> loss;     // [k]
};

struct Problem {
  std::vector<Front> fronts;  // [items]
  uint64_t slack = 0;         // B' = budget − Σ_i min_j w_ij
  uint64_t max_extra = 0;     // Σ_i extra.back(): slack beyond this buys nothing
};

bool add_overflows(uint64_t& sum, uint64_t x) {
  if (x > std::numeric_limits<uint64_t>::max() - sum) return true;
  sum += x;
  return false;
}

// Keeps the choices no other choice of the item dominates: sorted by (bytes,
// loss, index), a choice is kept when its loss is below every kept one's.
Front pareto_front(const std::vector<AllocationChoice>& choices) {
  std::vector<int> order(choices.size());
  for (size_t j = 0; j < order.size(); ++j) order[j] = static_cast<int>(j);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    if (choices[a].bytes != choices[b].bytes) return choices[a].bytes < choices[b].bytes;
    if (choices[a].loss != choices[b].loss) return choices[a].loss < choices[b].loss;
    return a < b;
  });
  Front f;
  const uint64_t base = choices[order[0]].bytes;
  for (int j : order) {
    if (!f.loss.empty() && choices[j].loss >= f.loss.back()) continue;
    f.index.push_back(j);
    f.extra.push_back(choices[j].bytes - base);
    f.loss.push_back(choices[j].loss);
  }
  return f;
}

Expected<Problem> prepare(const std::vector<AllocationItem>& items, uint64_t budget) {
  Problem p;
  p.fronts.reserve(items.size());
  uint64_t min_bytes = 0;
  uint64_t max_bytes = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& choices = items[i].choices;
    if (choices.empty()) return make_error("size allocation: item {} has no choices", i);
    uint64_t lo = choices[0].bytes;
    uint64_t hi = choices[0].bytes;
    for (size_t j = 0; j < choices.size(); ++j) {
      if (!std::isfinite(choices[j].loss)) {
        return make_error("size allocation: item {} choice {} has a loss that is not finite ({})", i, j,
                          choices[j].loss);
      }
      lo = std::min(lo, choices[j].bytes);
      hi = std::max(hi, choices[j].bytes);
    }
    if (add_overflows(min_bytes, lo) || add_overflows(max_bytes, hi)) {
      return make_error("size allocation: the bytes of items 0..{} overflow 64 bits", i);
    }
    p.fronts.push_back(pareto_front(choices));
    p.max_extra += p.fronts.back().extra.back();
  }
  if (min_bytes > budget) {
    return make_error(
        "size allocation: the smallest choices need {} bytes, over the budget of {} bytes (achievable range "
        "[{}, {}] bytes)",
        min_bytes, budget, min_bytes, max_bytes);
  }
  p.slack = budget - min_bytes;
  return p;
}

uint64_t ceil_div(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

// Multiple-choice knapsack DP with bytes counted in `unit`s (each choice's
// extra bytes rounded up, so a solution within `capacity` units fits
// capacity × unit bytes):
//   dp_i[c] = min_j dp_{i−1}[c − w_ij] + l_ij,  dp_{−1}[c] = 0,  c = 0..capacity,
// the minimum loss of items 0..i within c units. table [items, capacity + 1]
// holds each cell's argmin j; ties keep the lower j (fewer bytes).
template <typename Cell>
std::vector<int> solve_dp(const std::vector<Front>& fronts, uint64_t unit, uint64_t capacity) {
  const size_t cells = static_cast<size_t>(capacity) + 1;
  std::vector<Cell> table(fronts.size() * cells);  // [items, capacity + 1]
  std::vector<double> prev(cells, 0.0), cur(cells);
  std::vector<size_t> w;
  for (size_t i = 0; i < fronts.size(); ++i) {
    const Front& f = fronts[i];
    Cell* row = &table[i * cells];
    for (size_t c = 0; c < cells; ++c) cur[c] = prev[c] + f.loss[0];
    std::fill(row, row + cells, Cell{0});
    for (size_t j = 1; j < f.loss.size(); ++j) {
      const uint64_t wj = ceil_div(f.extra[j], unit);
      if (wj > capacity) break;  // extra grows along the front
      const double lj = f.loss[j];
      for (size_t c = wj; c < cells; ++c) {
        const double candidate = prev[c - wj] + lj;
        if (candidate < cur[c]) {
          cur[c] = candidate;
          row[c] = static_cast<Cell>(j);
        }
      }
    }
    std::swap(prev, cur);
  }
  std::vector<int> pos(fronts.size());
  uint64_t c = capacity;
  for (size_t i = fronts.size(); i-- > 0;) {
    pos[i] = table[i * cells + c];
    c -= ceil_div(fronts[i].extra[pos[i]], unit);
  }
  return pos;
}

std::vector<int> solve_dp_compact(const std::vector<Front>& fronts, uint64_t unit, uint64_t capacity) {
  size_t k = 0;
  for (const Front& f : fronts) k = std::max(k, f.loss.size());
  if (k <= 0xFF) return solve_dp<uint8_t>(fronts, unit, capacity);
  if (k <= 0xFFFF) return solve_dp<uint16_t>(fronts, unit, capacity);
  return solve_dp<uint32_t>(fronts, unit, capacity);
}

// Greedy repair with exact bytes: while some single upgrade (item i from its
// choice to one with more bytes) fits the bytes left, take the one with the
// largest loss decrease per extra byte. pos [items] indexes the fronts.
void greedy_upgrade(const std::vector<Front>& fronts, uint64_t slack, std::vector<int>& pos) {
  uint64_t used = 0;
  for (size_t i = 0; i < fronts.size(); ++i) used += fronts[i].extra[pos[i]];
  uint64_t left = slack - used;
  for (;;) {
    double best_rate = 0.0;
    size_t best_i = 0;
    int best_j = -1;
    for (size_t i = 0; i < fronts.size(); ++i) {
      const Front& f = fronts[i];
      const int now = pos[i];
      for (size_t j = now + 1; j < f.loss.size(); ++j) {
        const uint64_t more = f.extra[j] - f.extra[now];
        if (more > left) break;
        const double rate = (f.loss[now] - f.loss[j]) / static_cast<double>(more);
        if (best_j < 0 || rate > best_rate) {
          best_rate = rate;
          best_i = i;
          best_j = static_cast<int>(j);
        }
      }
    }
    if (best_j < 0) return;
    left -= fronts[best_i].extra[best_j] - fronts[best_i].extra[pos[best_i]];
    pos[best_i] = best_j;
  }
}

// One edge of an item's lower convex hull of (extra bytes, loss).
struct HullSegment {
  double rate = 0.0;  // loss decrease per byte, > 0
  int item = 0;
  int from = 0;  // front indices
  int to = 0;
};

// The hull vertices of one front: rates of consecutive edges strictly decrease
// (as computed, so the global sort below keeps each item's edges in order).
void append_hull(const Front& f, int item, std::vector<HullSegment>& out) {
  auto rate = [&](int a, int b) {
    return (f.loss[a] - f.loss[b]) / static_cast<double>(f.extra[b] - f.extra[a]);
  };
  std::vector<int> hull = {0};
  for (int j = 1; j < static_cast<int>(f.loss.size()); ++j) {
    while (hull.size() >= 2 && rate(hull[hull.size() - 2], hull.back()) <= rate(hull.back(), j)) hull.pop_back();
    hull.push_back(j);
  }
  for (size_t s = 0; s + 1 < hull.size(); ++s) out.push_back({rate(hull[s], hull[s + 1]), item, hull[s], hull[s + 1]});
}

struct LpRelaxation {
  double value = 0.0;       // the LP optimum: a lower bound on any allocation's loss
  std::vector<int> floor;   // [items] front positions of its integer part (fits the slack)
};

// LP relaxation over the convex hulls: from the smallest choices take hull
// edges by decreasing rate while they fit, the first that does not fit
// fractionally (Sinha & Zoltners 1979). Its value equals the Lagrangian dual.
// Leaving out the fractional edge gives an allocation within the budget whose
// loss exceeds the value by less than that edge's loss drop.
LpRelaxation solve_lp(const std::vector<Front>& fronts, uint64_t slack) {
  LpRelaxation lp;
  lp.floor.assign(fronts.size(), 0);
  std::vector<HullSegment> edges;
  for (size_t i = 0; i < fronts.size(); ++i) {
    lp.value += fronts[i].loss[0];
    append_hull(fronts[i], static_cast<int>(i), edges);
  }
  std::sort(edges.begin(), edges.end(), [](const HullSegment& a, const HullSegment& b) {
    if (a.rate != b.rate) return a.rate > b.rate;
    if (a.item != b.item) return a.item < b.item;
    return a.from < b.from;
  });
  uint64_t left = slack;
  for (const HullSegment& e : edges) {
    const Front& f = fronts[e.item];
    const uint64_t bytes = f.extra[e.to] - f.extra[e.from];
    const double drop = f.loss[e.from] - f.loss[e.to];
    if (bytes > left) {
      lp.value -= drop * (static_cast<double>(left) / static_cast<double>(bytes));
      break;
    }
    left -= bytes;
    lp.value -= drop;
    lp.floor[e.item] = e.to;
  }
  return lp;
}

Allocation make_allocation(const std::vector<AllocationItem>& items, const std::vector<Front>& fronts,
                           const std::vector<int>& pos) {
  Allocation a;
  a.choice.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    a.choice[i] = fronts[i].index[pos[i]];
    const AllocationChoice& c = items[i].choices[a.choice[i]];
    a.bytes += c.bytes;
    a.loss += c.loss;
  }
  return a;
}

}  // namespace

Expected<Allocation> allocate_min_loss(const std::vector<AllocationItem>& items, uint64_t budget_bytes) {
  LB_ASSIGN_OR_RETURN(const Problem p, prepare(items, budget_bytes));
  const std::vector<Front>& fronts = p.fronts;
  const uint64_t n = fronts.size();
  if (p.slack >= p.max_extra) {  // every item's least-loss choice fits
    std::vector<int> top(n);
    for (size_t i = 0; i < n; ++i) top[i] = static_cast<int>(fronts[i].loss.size()) - 1;
    Allocation a = make_allocation(items, fronts, top);
    a.lower_bound = a.loss;
    return a;
  }
  const uint64_t capacity = p.slack;  // < max_extra
  if (capacity + 1 <= kMaxCells / n) {
    Allocation a = make_allocation(items, fronts, solve_dp_compact(fronts, 1, capacity));
    a.lower_bound = a.loss;
    return a;
  }
  // Coarse DP: u = ceil(B' / C) with C = min(2^17, 2^26 / items − 1), so the
  // table has ≤ C + 1 cells per item and ≤ 2^26 in all.
  const uint64_t per_item = std::min(kCoarseCellsPerItem, std::max<uint64_t>(kMaxCells / n, 2) - 1);
  const uint64_t unit = ceil_div(capacity, per_item);
  std::vector<int> from_dp = solve_dp_compact(fronts, unit, capacity / unit);
  greedy_upgrade(fronts, p.slack, from_dp);
  LpRelaxation lp = solve_lp(fronts, p.slack);
  greedy_upgrade(fronts, p.slack, lp.floor);
  Allocation a = make_allocation(items, fronts, from_dp);
  Allocation b = make_allocation(items, fronts, lp.floor);
  Allocation& best = b.loss < a.loss ? b : a;
  best.exact = false;
  best.lower_bound = lp.value;
  return best;
}

Expected<double> lagrangian_lower_bound(const std::vector<AllocationItem>& items, uint64_t budget_bytes) {
  LB_ASSIGN_OR_RETURN(const Problem p, prepare(items, budget_bytes));
  return solve_lp(p.fronts, p.slack).value;
}

}  // namespace lowbit
