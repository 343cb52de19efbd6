// A linear layer computed with BF16 products and FP32 sums (kernels/gemm_bf16.h):
// the calibration forward's linears under --calib-arith bf16 (pipeline/calibration.h).
// The weight [out, in] is rounded to BF16 panels once, when the layer is built; each
// forward rounds its input rows x[n, in] and runs the BF16 product over the pool.
// Against FP32: |y - W x| ≤ Σ_i |bf16(w)bf16(x) - w x| + γ_in Σ_i |w x|, about 2^-8
// relative per product before averaging (gemm_bf16.h). Not a storage format: the
// model written to disk never holds it.
#pragma once

#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm_bf16.h"
#include "model/linear.h"
#include "model/weights.h"

namespace lowbit {

class Bf16Linear : public Linear {
 public:
  // matrix: [out, in] (+ bias [out] or empty), read once; `isa` picks the BF16 kernel.
  Bf16Linear(const Matrix& matrix, Isa isa);
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return panels_.n; }
  void forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const override;
  uint64_t weight_bytes() const override { return panels_.data.size() * sizeof(uint32_t) + bias_.size() * 4; }
  std::string describe() const override { return "bf16 products"; }

 private:
  int64_t in_ = 0;
  Isa isa_;
  Bf16Panels panels_;        // W [out, in] as B panels
  std::vector<float> bias_;  // [out] or empty
};

}  // namespace lowbit
