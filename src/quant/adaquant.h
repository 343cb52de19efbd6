// AdaQuant-style layer-wise calibration of a quantized weight (Hubara, Nahshan,
// Hanani, Banner, Soudry 2021, "Accurate Post Training Quantization With Small
// Calibration Sets"), with AdaRound's constraint on the rounding (Nagel et al.
// 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization"), and
// bias correction (the mean output error folded into the linear's bias).
//
// Objective: the layer's output error on the calibration inputs X [n, in],
//   ‖X Wᵀ − X Qᵀ‖²_F = tr((W − Q) H (W − Q)ᵀ),  H = XᵀX [in, in],
// worked from H alone (what the pipeline accumulates for GPTQ), so memory stays
// [in, in] whatever the number of calibration tokens. It is a sum over rows of
// d_rᵀ H d_r (d = w − q): rows are independent and are refined in parallel.
// As in GPTQ, H is damped: H_λ = H + λI, λ = damp · mean(diag H) (which also
// pulls columns that calibration never activated towards round-to-nearest).
//
// Method: block coordinate descent on the damped objective, from a starting
// quantization (RTN or GPTQ), alternating `steps` times:
//   1. scales: for each scale group J of the row, with the codes fixed, the
//      stored values are q_J = S v_J + M 1_J (v = element values; M = 0 when
//      symmetric). The objective is a quadratic in a = (S, M):
//        φ(a) = −2 aᵀb + aᵀCa + const,  C = Aᵀ H_JJ A,  b = Aᵀ (H d⁰)_J,
//      A = [v, 1], d⁰ = d with the group's q removed (d⁰_J = w_J). The exact
//      minimiser C⁻¹b is rounded to the scale type (the codes around it, ±1,
//      for S and for M: 9 candidates), and the best candidate replaces the
//      current (S, M) only if φ decreases.
//   2. rounding: one sweep over the columns; for column j the candidates are
//      AdaRound's two, the grid values just below and just above (w_j − M)/S,
//      and changing q_j by δ changes the objective by exactly
//        Δ = −2δ g_j + δ² H_jj,   g = H_λ d,
//      so the best candidate is taken only if Δ < 0, and g −= δ H_λ[:, j].
//      (This is the coordinate-descent form of AdaRound's problem: the same
//      per-weight up/down choice, solved greedily and exactly on H rather than
//      by the rectified sigmoid with its annealed regulariser and SGD.)
// Every accepted move lowers the damped objective, so it never increases; the
// result is still compared with the start after decoding with the reference
// decoder, and the start is returned unchanged unless the refinement is lower.
// Steps stop early when a step changes nothing. On H = I (weights' MSE) RTN is
// already the optimum of the rounding and is left unchanged.
//
// Scale steps need independent rows: row and group granularity (every integer
// and minifloat weight format with per-channel or per-group scales); for tensor
// and block2d scales only the rounding is refined. GGUF block types and
// weights with side tables (EasyQuant outliers, LoRC factors) are refused.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "formats/block_format.h"
#include "quant/quantized_weight.h"

namespace lowbit {

struct AdaQuantOptions {
  int steps = 4;        // alternations of (scale fit, rounding sweep); >= 1
  bool scales = true;   // refit the group scales (and minimums) in step 1
  float damp = 0.01f;   // λ = damp · mean(diag H); 0 = undamped
};

struct AdaQuantStats {
  double start_error = 0.0;   // tr(ΔW H_λ ΔWᵀ) of the start (damped H)
  double final_error = 0.0;   // of the result (the start's when it was kept)
  int64_t codes_changed = 0;  // weights whose code differs from the start's
  int64_t scales_changed = 0; // scale groups whose scale or minimum code differs
  int steps_run = 0;
  bool kept_start = false;    // the refinement did not lower the error
};

// start: a quantized weight in `format` (tensor only: no outliers, no low-rank
// factors); w: [rows, cols] the FP32 weight; hessian: [cols, cols] H = XᵀX.
// pool: rows are refined in parallel on it (null: the calling thread).
Expected<QuantizedWeight> adaquant_refine(const BlockFormat& format, const QuantizedWeight& start, const float* w,
                                          int64_t rows, int64_t cols, const std::vector<double>& hessian,
                                          const AdaQuantOptions& options, AdaQuantStats* stats = nullptr,
                                          ThreadPool* pool = nullptr);

// Bias correction: the mean output error of Ŵ on the calibration inputs, whose
// mean is x̄ [cols], is E_t[x_t Wᵀ − x_t Ŵᵀ] = (W − Ŵ) x̄ [rows]; adding it to the
// linear's bias makes the mean output error on the calibration set zero.
// w, w_hat: [rows, cols]. Returns the correction [rows], in double sums.
std::vector<float> bias_correction(const float* w, const float* w_hat, int64_t rows, int64_t cols,
                                   const std::vector<double>& mean_x);

}  // namespace lowbit
