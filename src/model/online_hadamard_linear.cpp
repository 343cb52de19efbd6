#include "model/online_hadamard_linear.h"

#include <vector>

namespace lowbit {

void OnlineHadamardLinear::forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  const int64_t n = in_features();
  std::vector<float> rotated(x, x + n_tokens * n);  // [n_tokens, in]
  if (n_tokens > 1 && pool.size() > 1) {
    pool.parallel_for(n_tokens, [&](int64_t begin, int64_t end, int) {
      rotation_.apply(rotated.data() + begin * n, end - begin);
    });
  } else {
    rotation_.apply(rotated.data(), n_tokens);
  }
  inner_->forward(rotated.data(), n_tokens, y, pool);
}

std::string OnlineHadamardLinear::describe() const { return rotation_.describe() + " · " + inner_->describe(); }

Status attach_online_rotation(LlamaModel& model, const std::string& name, const Rotation& rotation) {
  Linear* current = model.find_linear(name);
  if (current == nullptr) return make_error("no linear layer named '{}'", name);
  if (current->in_features() != rotation.size()) {
    return make_error("linear '{}': an online rotation of order {} does not fit its {} inputs", name, rotation.size(),
                      current->in_features());
  }
  return model.wrap_linear(name, [&](std::unique_ptr<Linear> inner) -> std::unique_ptr<Linear> {
    return std::make_unique<OnlineHadamardLinear>(std::move(inner), rotation);
  });
}

Status attach_online_rotations(LlamaModel& model, const RotationSpec& spec) {
  const std::optional<Rotation> down = online_down_rotation(model.config(), spec);
  if (!down) return Status::ok_status();
  for (int i = 0; i < model.config().n_layers; ++i) {
    LB_RETURN_IF_ERROR(attach_online_rotation(model, fmt::format("layers.{}.down_proj", i), *down));
  }
  return Status::ok_status();
}

}  // namespace lowbit
