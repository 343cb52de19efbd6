#include "kernels/exp_rows.h"

#include <algorithm>
#include <cmath>

namespace lowbit {
namespace {

void softmax_generic(float* x, int64_t n) {
  if (n <= 0) return;
  float max_value = x[0];
  for (int64_t i = 1; i < n; ++i) max_value = std::max(max_value, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max_value);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu_generic(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void exp_generic(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::exp(x[i]);
}

}  // namespace

ExpRowOps exp_row_ops_generic() { return {softmax_generic, swiglu_generic, exp_generic, "exp/generic"}; }

ExpRowOps exp_row_ops(Isa isa) {
#ifdef LOWBIT_ARCH_X86
  if (isa >= Isa::kAvx512) return exp_row_ops_avx512();
  if (isa >= Isa::kAvx2) return exp_row_ops_avx2();
#endif
  return exp_row_ops_generic();
}

}  // namespace lowbit
