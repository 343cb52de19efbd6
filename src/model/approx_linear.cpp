#include "model/approx_linear.h"

#include <fmt/format.h>

#include <memory>

namespace lowbit {

ApproxLinear::ApproxLinear(const Matrix& matrix, const ApproxArith& arith, Isa isa)
    : in_(matrix.cols), out_(matrix.rows), arith_(arith), isa_(isa), bias_(matrix.bias) {
  weight_.resize(static_cast<size_t>(out_ * in_));
  approx_round_rows(arith_, matrix.data.data(), out_, in_, in_, weight_.data());
}

void ApproxLinear::forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  std::unique_ptr<uint32_t[]> x_bits(new uint32_t[static_cast<size_t>(n_tokens * in_)]);  // [n_tokens, in], all written
  approx_round_rows(arith_, x, n_tokens, in_, in_, x_bits.get(), &pool);
  const ApproxRows a{.data = x_bits.get(), .rows = n_tokens, .k = in_, .stride = in_};
  const ApproxRows w{.data = weight_.data(), .rows = out_, .k = in_, .stride = in_};
  approx_gemm(arith_, a, w, y, out_, 1.0f, isa_, &pool);
  add_row_bias(y, n_tokens, bias_);
}

std::string ApproxLinear::describe() const {
  if (arith_.product == ApproxProduct::kLmul) return fmt::format("lmul m={} products", arith_.lmul_mantissa);
  return "fp8_e4m3 products";
}

}  // namespace lowbit
