#include "model/fixed_order_linear.h"

#include <fmt/format.h>

#include <algorithm>

namespace lowbit {

FixedOrderLinear::FixedOrderLinear(Matrix matrix, Isa isa)
    : matrix_(std::move(matrix)), kernels_(fixed_order_kernels(isa)) {}

void FixedOrderLinear::forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  const int64_t rows = matrix_.rows, in = matrix_.cols;
  // Blocks of 16 output rows handed out over the pool: a split of the outputs,
  // which leaves every element's sum whole (and in the fixed order). Within a
  // thread's rows, tokens go in blocks of kTokenBlock ([64, in] of x stays in L2
  // while the thread's weight rows stream past it); blocking changes which
  // elements are computed together, not any element's order.
  constexpr int64_t kRowBlock = 16, kTokenBlock = 64;
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  pool.parallel_for(blocks, [&](int64_t b0, int64_t b1, int) {
    const int64_t r0 = b0 * kRowBlock, r1 = std::min(rows, b1 * kRowBlock);
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokenBlock) {
      const int64_t nt = std::min(kTokenBlock, n_tokens - t0);
      kernels_.rows(matrix_.data.data(), in, r0, r1, x + t0 * in, nt, y + t0 * rows, rows);
    }
    if (!matrix_.bias.empty()) {
      for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t r = r0; r < r1; ++r) y[t * rows + r] += matrix_.bias[r];
      }
    }
  });
}

uint64_t FixedOrderLinear::weight_bytes() const {
  return (matrix_.data.size() + matrix_.bias.size()) * sizeof(float);
}

std::string FixedOrderLinear::describe() const { return fmt::format("f32 {}", kernels_.name); }

}  // namespace lowbit
