// Calibration under an online rotation: a DecoderBlock's observer sees the input
// of the outer layer, but with OnlineHadamardLinear around down_proj the weight
// being quantized (W_down·H) multiplies x·H. This observer hands the named
// linear's input to the inner observer rotated (x·H), every other input as is,
// so H = (xH)ᵀ(xH), max|x_j|, AWQ rows, ... describe what the weight sees.
#pragma once

#include <string>
#include <vector>

#include "kernels/orthogonal_rotation.h"
#include "model/linear.h"

namespace lowbit {

class RotatedInputObserver : public ActivationObserver {
 public:
  // `linear_name`: the full name ("layers.3.down_proj"); the rotation's order is its input width.
  RotatedInputObserver(ActivationObserver& inner, std::string linear_name, const Rotation& rotation)
      : inner_(inner), name_(std::move(linear_name)), rotation_(rotation) {}

  void observe(const std::string& linear_name, const float* x, int64_t n_tokens, int64_t in_features) override;

 private:
  ActivationObserver& inner_;
  std::string name_;
  const Rotation& rotation_;
  std::vector<float> rotated_;  // [n_tokens, in] of the last call
};

}  // namespace lowbit
