// The PTQ1.61 quantizer (Zhao et al. 2025; the stored form is
// formats/ptq161_code.h) on one matrix W [rows, cols]:
//   1. mask: the ns input channels (columns) with the largest activation energy
//      d_j = diag(H)_j = sum_t x_tj^2 are salient; the paper chooses them from the
//      input activations because ||dW X|| <= sum_j ||dW_:j|| ||x_j||, so the error
//      bound shrinks most where ||x_j|| is largest. Without calibration data the
//      columns of largest weight energy sum_r W_rj^2 are taken instead.
//   2. salient columns: 4-bit asymmetric per row, W ~ s q + m, q in 0..15,
//      min-max start, then alternately the codes for (s, m) and the weighted
//      least-squares (s, m) for the codes (sum_j d_j (w_j - s q_j - m)^2).
//   3. the rest binarised per (row, block of B columns): W ~ mu + alpha b,
//      b in {-1, +1}, minimising sum_i d_i (w_i - mu - alpha b_i)^2 exactly. It
//      is weighted two-level clustering in one dimension: for given signs the
//      levels mu -+ alpha are the weighted means of the two sets, and for given
//      levels each w_i takes the nearer one, so the optimal minus set is the k
//      smallest values for some k; all n + 1 splits are tried with prefix sums.
//      The FP16-rounded mu then decides the stored signs (w_i >= mu: plus).
// Weights d are diag(H) where given (the output error of the layer when input
// channels are uncorrelated), else 1; a block whose weights sum to 0 uses 1.
// The paper's block-wise scale optimisation also takes row-wise correlations and
// the angular bias between W and its binarisation into account (learned on the
// calibration data); here each (row, block) pair is fitted alone, in closed form,
// on the layer's diagonal error proxy.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "formats/ptq161_code.h"

namespace lowbit {

// The ns = p.salient_cols(cols) salient columns, ascending: largest importance
// (or weight energy when importance is empty), ties to the lower index.
std::vector<int32_t> ptq161_select_salient(const Ptq161Params& p, const float* w, int64_t rows, int64_t cols,
                                           std::span<const float> importance);

// (scale, offset) minimising sum_i d_i (x_i - offset - scale v_i)^2 over n values
// (in double): with D = sum d, V = sum d v, X = sum d x, VV = sum d v^2, VX = sum d v x,
//   scale = (D VX - V X) / (D VV - V^2), offset = (X - scale V) / D;
// where all v are equal (D VV - V^2 = 0) scale = 0 and offset = X / D. d may be null (all 1).
struct AffineFit {
  double scale = 0.0, offset = 0.0;
};
AffineFit weighted_affine_fit(const float* x, const float* v, const float* d, int64_t n);

// One binarised block (step 3), the exact weighted optimum: plus[i] = 1 where
// b_i = +1; alpha >= 0 (0 when one level is best: all plus, mu the weighted mean).
// Unrounded; d may be null (all 1).
struct Binarised {
  double alpha = 0.0, mu = 0.0;
};
Binarised ptq161_binarise(const float* w, const float* d, int64_t n, uint8_t* plus);

// The whole matrix; importance: [cols] diag(H) or empty.
Expected<QuantizedTensor> ptq161_quantize(const Ptq161Params& p, const float* w, int64_t rows, int64_t cols,
                                          std::span<const float> importance);

}  // namespace lowbit
