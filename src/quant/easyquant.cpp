// EasyQuant (Tang et al. 2023, "EasyQuant: An Efficient Data-free Quantization
// Algorithm for LLMs"), data-free:
//
// 1. Outliers. In each row (output channel) the round(fraction · cols) weights of
//    largest |w| (ties: lower column first) are kept exactly in the sparse side
//    table. The paper isolates outliers per channel (beyond n·σ of the channel);
//    a per-row count keeps the same per-channel view with a size fixed in advance.
// 2. Ranges. The outliers are zeroed and so no longer set any block's range
//    (a symmetric range is |max|; an asymmetric one [min(x, 0), max(x, 0)]
//    contains 0 anyway). For every scale block the clip ratio r in
//    {1, 1 − (1 − clip_min)/steps, ..., clip_min} minimising the squared error of
//    the block's non-outlier weights, Σ (w − q)², is kept (the first, i.e. the
//    widest range, on ties). The paper optimises the range by gradient descent on
//    this objective; a grid of clip ratios on the block |max| (or on both ends of
//    the asymmetric range) is its discrete version. With fraction 0 the
//    candidates, the error sums and their order are those of the formats layer's
//    MSE clip search with clip_steps = steps, so EasyQuant then equals
//    quantize_rtn with kMseClip bit for bit (tested).
//
// Each candidate's scales are chosen by the formats layer from the zeroed matrix
// times r (the block |max| of x·r is |max| · r exactly, as float rounding is
// monotone), and the unscaled weights are quantized against them (block_scales.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "quant/block_scales.h"
#include "quant/quantizers.h"

namespace lowbit {

Expected<QuantizedWeight> quantize_easyquant(const BlockFormat& format, const float* w, int64_t rows, int64_t cols,
                                             const EasyQuantOptions& options) {
  const std::string& name = format.name();
  if (rows < 1 || cols < 1 || w == nullptr) return make_error("easyquant {}: empty weight [{}, {}]", name, rows, cols);
  if (!(options.outlier_fraction >= 0.0f && options.outlier_fraction < 1.0f)) {
    return make_error("easyquant {}: outlier_fraction {} must be in [0, 1)", name, options.outlier_fraction);
  }
  if (options.search_steps < 1 || options.search_steps > 1000 || !(options.clip_min > 0.0f && options.clip_min <= 1.0f)) {
    return make_error("easyquant {}: needs 1 <= search_steps <= 1000 and 0 < clip_min <= 1 (got {}, {})", name,
                      options.search_steps, options.clip_min);
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) {
      return make_error("easyquant {}: weight [{}, {}] = {} is not finite", name, i / cols, i % cols, w[i]);
    }
  }

  QuantizedWeight out;
  out.format = name;
  const int64_t per_row = std::min<int64_t>(cols, std::llround(static_cast<double>(options.outlier_fraction) * cols));
  std::vector<float> wz(w, w + rows * cols);                     // [rows, cols] outliers zeroed
  std::vector<uint8_t> kept(static_cast<size_t>(rows * cols), 0);  // [rows, cols] 1 = outlier
  std::vector<int32_t> order(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows && per_row > 0; ++r) {
    const float* wr = w + r * cols;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + per_row, order.end(), [wr](int32_t a, int32_t b) {
      const float fa = std::fabs(wr[a]), fb = std::fabs(wr[b]);
      return fa > fb || (fa == fb && a < b);
    });
    std::sort(order.begin(), order.begin() + per_row);
    for (int64_t k = 0; k < per_row; ++k) {
      const int32_t c = order[k];
      out.outliers.push_back(SparseOutlier{static_cast<int32_t>(r), c, wr[c]});
      kept[r * cols + c] = 1;
      wz[r * cols + c] = 0.0f;
    }
  }

  LB_ASSIGN_OR_RETURN(BlockScales best, BlockScales::create(format, rows, cols));
  LB_ASSIGN_OR_RETURN(BlockScales candidate, BlockScales::create(format, rows, cols));
  float amax = 0.0f;
  for (float v : wz) amax = std::max(amax, std::fabs(v));
  best.set_tensor_amax(amax);
  candidate.set_tensor_amax(amax);

  const int64_t blocks = best.num_blocks(), group = best.group_cols();
  std::vector<double> best_err(static_cast<size_t>(blocks), std::numeric_limits<double>::infinity()), err(best_err.size());
  std::vector<float> scaled(wz.size()), q(static_cast<size_t>(cols));  // [rows, cols], [cols]
  const float step = (1.0f - options.clip_min) / static_cast<float>(options.search_steps);
  for (int i = 0; i <= options.search_steps; ++i) {
    const float ratio = 1.0f - static_cast<float>(i) * step;
    for (size_t k = 0; k < wz.size(); ++k) scaled[k] = wz[k] * ratio;
    LB_RETURN_IF_ERROR(candidate.choose(scaled.data(), 0, cols));
    std::fill(err.begin(), err.end(), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const float* wr = wz.data() + r * cols;
      candidate.quantize_row(r, 0, cols, wr, nullptr, q.data());
      for (int64_t c0 = 0; c0 < cols; c0 += group) {
        double& e = err[candidate.block_of(r, c0)];
        for (int64_t c = c0; c < std::min(cols, c0 + group); ++c) {
          if (kept[r * cols + c]) continue;
          const double d = static_cast<double>(wr[c]) - static_cast<double>(q[c]);
          e += d * d;
        }
      }
    }
    for (int64_t b = 0; b < blocks; ++b) {
      if (err[b] < best_err[b]) {
        best_err[b] = err[b];
        best.copy_block(candidate, b);
      }
    }
  }

  std::vector<uint16_t> codes(static_cast<size_t>(rows * cols));  // [rows, cols]
  for (int64_t r = 0; r < rows; ++r) {
    best.quantize_row(r, 0, cols, wz.data() + r * cols, codes.data() + r * cols, q.data());
  }
  LB_ASSIGN_OR_RETURN(out.tensor, best.pack(codes.data()));
  return out;
}

}  // namespace lowbit
