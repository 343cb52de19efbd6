#include "model/linear.h"

#include <cblas.h>

namespace lowbit {

void DenseLinear::forward(const float* x, int64_t n_tokens, float* y, ThreadPool& /*pool*/) const {
  const int64_t out = matrix_.rows;
  const int64_t in = matrix_.cols;
  if (n_tokens == 1) {
    // Decode: y[out] = W[out, in] · x[in]; bandwidth-bound, sgemv streams W once.
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(out), static_cast<int>(in), 1.0f,
                matrix_.data.data(), static_cast<int>(in), x, 1, 0.0f, y, 1);
  } else {
    // Prompt: y[n, out] = x[n, in] · W[out, in]ᵀ.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens),
                static_cast<int>(out), static_cast<int>(in), 1.0f, x, static_cast<int>(in),
                matrix_.data.data(), static_cast<int>(in), 0.0f, y, static_cast<int>(out));
  }
  add_row_bias(y, n_tokens, matrix_.bias);
}

void add_row_bias(float* y, int64_t n_tokens, const std::vector<float>& bias) {
  const int64_t out = static_cast<int64_t>(bias.size());
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* row = y + t * out;
    for (int64_t o = 0; o < out; ++o) row[o] += bias[o];
  }
}

uint64_t DenseLinear::weight_bytes() const {
  return (matrix_.data.size() + matrix_.bias.size()) * sizeof(float);
}

}  // namespace lowbit
