// A linear layer that rotates its input before the inner layer runs:
// y = inner(x·H). QuaRot stores down_proj's weight as W·H (pipeline/rotation.h),
// so inner(x·H) = x·H·(W·H)ᵀ = x·Wᵀ, and the inner
// layer (and any activation quantizer inside it) sees the rotated input, whose
// outliers the Hadamard transform has spread. H is any Rotation (a Hadamard
// transform, or the dense random orthogonal fallback).
//
// Wrapping order: this wrapper is the outermost; inside it the activation
// quantizer (model/act_quant_linear.h), inside that the weight. The rotated
// copy of x lives in a buffer of the call, so one layer may serve concurrent
// callers.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "kernels/orthogonal_rotation.h"
#include "model/linear.h"
#include "model/llama_model.h"
#include "model/rotation_spec.h"

namespace lowbit {

class OnlineHadamardLinear : public Linear {
 public:
  // rotation.size() must equal inner->in_features() (checked by attach_online_rotation).
  OnlineHadamardLinear(std::unique_ptr<Linear> inner, Rotation rotation)
      : inner_(std::move(inner)), rotation_(std::move(rotation)) {}

  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  // x: [n_tokens, in] → y: [n_tokens, out]; rows are rotated in parallel on `pool`.
  void forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const override;
  uint64_t weight_bytes() const override { return inner_->weight_bytes(); }
  // "hadamard 1536 = 128·12 · <inner>"
  std::string describe() const override;

  const Linear& inner() const { return *inner_; }
  const Rotation& rotation() const { return rotation_; }

 private:
  std::unique_ptr<Linear> inner_;
  Rotation rotation_;
};

// Wraps the named linear (whatever implements it now) in an OnlineHadamardLinear;
// error when the sizes differ.
Status attach_online_rotation(LlamaModel& model, const std::string& name, const Rotation& rotation);
// Every layers.{i}.down_proj of `model`, as `spec` asks (nothing when !spec.online_down).
Status attach_online_rotations(LlamaModel& model, const RotationSpec& spec);

}  // namespace lowbit
