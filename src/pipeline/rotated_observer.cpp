#include "pipeline/rotated_observer.h"

namespace lowbit {

void RotatedInputObserver::observe(const std::string& linear_name, const float* x, int64_t n_tokens,
                                   int64_t in_features) {
  if (linear_name != name_) {
    inner_.observe(linear_name, x, n_tokens, in_features);
    return;
  }
  rotated_.assign(x, x + n_tokens * in_features);
  rotation_.apply(rotated_.data(), n_tokens);
  inner_.observe(linear_name, rotated_.data(), n_tokens, in_features);
}

}  // namespace lowbit
