// A linear layer computed with BF16 products and FP32 sums (kernels/gemm_bf16.h):
// the calibration forward's linears under --calib-arith bf16 (pipeline/calibration.h).
// The weight [out, in] is rounded to BF16 panels once, when the layer is built; each
// forward rounds its input rows x[n, in] and runs the BF16 product over the pool.
// Against FP32: |y - W x| ≤ Σ_i |bf16(w)bf16(x) - w x| + γ_in Σ_i |w x|, about 2^-8
// relative per product before averaging (gemm_bf16.h). Not a storage format: the
// model written to disk never holds it.
#pragma once

#include <span>
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
  const Bf16Linear* bf16_linear() const override { return this; }

  // Whether `other` reads its input as this layer does (same width and kernel), so
  // forward_shared_input can round one input for both.
  bool shares_input(const Bf16Linear& other) const { return other.in_ == in_ && other.isa_ == isa_; }
  // ys[i][n_tokens, out_i] = group[i](x) for layers that share their input (q/k/v,
  // gate/up): x is rounded to BF16 once instead of once per layer. Each output is
  // bit-identical to group[i]->forward(x).
  static void forward_shared_input(std::span<const Bf16Linear* const> group, const float* x, int64_t n_tokens,
                                   std::span<float* const> ys, ThreadPool& pool);

 private:
  int64_t in_ = 0;
  Isa isa_;
  // y = x_bf16 · Wᵀ (+ bias) for x already rounded ([n_tokens][pairs]).
  void forward_rounded(const uint32_t* x_bf16, int64_t n_tokens, float* y, ThreadPool& pool) const;

  Bf16Panels panels_;        // W [out, in] as B panels
  std::vector<float> bias_;  // [out] or empty
};

}  // namespace lowbit
