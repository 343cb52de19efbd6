// An FP32 linear layer whose outputs do not depend on how it is called: every
// y[t, o] is kernels/fixed_order.h's dot of input row t and weight row o, in the
// one summation order of that header, whatever the token count, the thread count
// (the pool splits output rows only, never the sum over inputs) or the ISA level
// (each level's kernel gives the same bits). The layer of `--deterministic`
// (model/deterministic.h); slower than BLAS's sgemm, which picks blockings, and
// with them summation orders, by matrix size.
#pragma once

#include <string>

#include "kernels/fixed_order.h"
#include "model/linear.h"

namespace lowbit {

class FixedOrderLinear : public Linear {
 public:
  // matrix: [out, in] (+ bias [out] or empty).
  FixedOrderLinear(Matrix matrix, Isa isa);
  int64_t in_features() const override { return matrix_.cols; }
  int64_t out_features() const override { return matrix_.rows; }
  void forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const override;
  uint64_t weight_bytes() const override;
  std::string describe() const override;
  const Matrix* dense_matrix() const override { return &matrix_; }

 private:
  Matrix matrix_;  // [out, in]
  FixedOrderKernels kernels_;
};

}  // namespace lowbit
