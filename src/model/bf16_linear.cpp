#include "model/bf16_linear.h"

#include <memory>

namespace lowbit {

Bf16Linear::Bf16Linear(const Matrix& matrix, Isa isa) : in_(matrix.cols), isa_(isa), bias_(matrix.bias) {
  pack_bf16_panels_from_rows(matrix.data.data(), matrix.rows, matrix.cols, matrix.cols, panels_);
}

namespace {

// x [n_tokens, in] rounded to BF16 pairs, [n_tokens][ceil(in / 2)], rows split over the pool.
// Not zero-filled (every pair is written): 6 MB a call at 2048 × 1536 was a serial memset.
std::unique_ptr<uint32_t[]> round_input(const float* x, int64_t n_tokens, int64_t in, Isa isa, ThreadPool& pool) {
  std::unique_ptr<uint32_t[]> x_bf16(new uint32_t[static_cast<size_t>(n_tokens * ((in + 1) / 2))]);
  round_rows_bf16_to(x, n_tokens, in, in, x_bf16.get(), isa, &pool);
  return x_bf16;
}

}  // namespace

void Bf16Linear::forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  forward_rounded(round_input(x, n_tokens, in_, isa_, pool).get(), n_tokens, y, pool);
}

void Bf16Linear::forward_shared_input(std::span<const Bf16Linear* const> group, const float* x, int64_t n_tokens,
                                      std::span<float* const> ys, ThreadPool& pool) {
  if (group.empty()) return;
  const Bf16Linear& first = *group[0];
  const std::unique_ptr<uint32_t[]> x_bf16 = round_input(x, n_tokens, first.in_, first.isa_, pool);
  for (size_t i = 0; i < group.size(); ++i) group[i]->forward_rounded(x_bf16.get(), n_tokens, ys[i], pool);
}

void Bf16Linear::forward_rounded(const uint32_t* x_bf16, int64_t n_tokens, float* y, ThreadPool& pool) const {
  const Bf16Rows a{.rows = n_tokens, .pairs = panels_.pairs, .row_stride = panels_.pairs, .pair_stride = 1,
                   .data = x_bf16};
  gemm_bf16(a, panels_, y, panels_.n, {}, isa_, &pool);
  add_row_bias(y, n_tokens, bias_);
}

}  // namespace lowbit
