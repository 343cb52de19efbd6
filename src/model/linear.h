// The linear-layer seam. The runtime calls every projection (q/k/v/o, gate/up/down,
// lm_head) through this interface, so quantized implementations replace a layer
// by name without touching the forward pass.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/weights.h"

namespace lowbit {

class PackedLinear;
class Bf16Linear;

class Linear {
 public:
  virtual ~Linear() = default;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  // y[n_tokens, out] = x[n_tokens, in] · Wᵀ (+ bias). x and y do not alias.
  virtual void forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const = 0;
  // Bytes of weight storage (scales included), for bits-per-weight and bandwidth.
  virtual uint64_t weight_bytes() const = 0;
  virtual std::string describe() const = 0;
  // The packed layer this is (model/packed_linear.h), null for every other kind,
  // wrappers included: how the model assembler finds the layers that share one
  // decode pass and rebuilds a layer with integer activations, without a downcast.
  virtual const PackedLinear* packed_linear() const { return nullptr; }
  // The BF16-product layer this is (model/bf16_linear.h), null for every other kind:
  // how a block finds the calibration linears that can share one rounding of their input.
  virtual const Bf16Linear* bf16_linear() const { return nullptr; }
  // The FP32 matrix of a DenseLinear (its bias too), null for every other kind.
  virtual const Matrix* dense_matrix() const { return nullptr; }
};

// FP32 weights; matrix products through BLAS (sgemm for prompts, sgemv for decode).
class DenseLinear : public Linear {
 public:
  explicit DenseLinear(Matrix matrix) : matrix_(std::move(matrix)) {}
  int64_t in_features() const override { return matrix_.cols; }
  int64_t out_features() const override { return matrix_.rows; }
  void forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const override;
  uint64_t weight_bytes() const override;
  std::string describe() const override { return "f32"; }
  const Matrix& matrix() const { return matrix_; }
  const Matrix* dense_matrix() const override { return &matrix_; }

 private:
  Matrix matrix_;  // [out, in]
};

// y[t, o] += bias[o] for every token t of y [n_tokens, bias.size()]; nothing when bias is empty.
void add_row_bias(float* y, int64_t n_tokens, const std::vector<float>& bias);

// Calibration seam: sees the input of every linear layer during a forward pass.
class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  // x: [n_tokens, in_features], the exact input the named linear layer receives.
  virtual void observe(const std::string& linear_name, const float* x, int64_t n_tokens,
                       int64_t in_features) = 0;
  // False when the caller wants only the linear inputs and discards the block's
  // output: a decoder block then stops once down_proj's input is observed, without
  // running down_proj (a third of the MLP's multiply-adds), and leaves an
  // unspecified residual in its output.
  virtual bool needs_block_output() const { return true; }
};

}  // namespace lowbit
