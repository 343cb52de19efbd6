#include "model/bf16_linear.h"

#include <memory>

namespace lowbit {

Bf16Linear::Bf16Linear(const Matrix& matrix, Isa isa) : in_(matrix.cols), isa_(isa), bias_(matrix.bias) {
  pack_bf16_panels_from_rows(matrix.data.data(), matrix.rows, matrix.cols, matrix.cols, panels_);
}

void Bf16Linear::forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  const int64_t out = panels_.n;
  const int64_t pairs = panels_.pairs;
  // x rounded to BF16 pairs, [n_tokens][pairs], rows split over the pool.
  // Not zero-filled (every pair is written): 6 MB a call at 2048 × 1536 was a serial memset.
  std::unique_ptr<uint32_t[]> x_bf16(new uint32_t[static_cast<size_t>(n_tokens * pairs)]);
  round_rows_bf16_to(x, n_tokens, in_, in_, x_bf16.get(), isa_, &pool);
  const Bf16Rows a{.rows = n_tokens, .pairs = pairs, .row_stride = pairs, .pair_stride = 1, .data = x_bf16.get()};
  gemm_bf16(a, panels_, y, out, {}, isa_, &pool);
  add_row_bias(y, n_tokens, bias_);
}

}  // namespace lowbit
