// A linear layer computed with L-Mul or FP8 E4M3 products and FP32 sums
// (kernels/approx_gemm.h): `ppl --arith lmul|fp8` (model/product_arithmetic.h).
// The weight [out, in] is rounded to the product's operand format once, when the
// layer is built; each forward rounds its input rows x[n, in] and runs the product
// over the pool:  y[t, o] = Σ_i x̃[t, i] ∘ W̃[o, i] (+ bias[o]). Not a storage
// format: the model on disk never holds it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/approx_gemm.h"
#include "kernels/cpu_features.h"
#include "model/linear.h"
#include "model/weights.h"

namespace lowbit {

class ApproxLinear : public Linear {
 public:
  // matrix: [out, in] (+ bias [out] or empty), read once; `isa` picks the dot kernel.
  ApproxLinear(const Matrix& matrix, const ApproxArith& arith, Isa isa);
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const override;
  uint64_t weight_bytes() const override { return weight_.size() * sizeof(uint32_t) + bias_.size() * 4; }
  std::string describe() const override;

 private:
  int64_t in_ = 0;
  int64_t out_ = 0;
  ApproxArith arith_;
  Isa isa_;
  std::vector<uint32_t> weight_;  // [out, in] rounded to the operand format, as bits
  std::vector<float> bias_;       // [out] or empty
};

}  // namespace lowbit
