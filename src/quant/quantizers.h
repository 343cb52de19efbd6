// Post-training weight quantizers on one matrix W [out, in] (row-major). Each
// returns a QuantizedWeight; none knows about models: calibration statistics
// come in as plain arrays (H = XᵀX [in, in], per-channel mean |x| [in]).
// RTN, GPTQ and AWQ take any weight format (quant/weight_format.h: a scaled
// format or a GGUF block type); EasyQuant takes scaled formats only.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "formats/block_format.h"
#include "quant/weight_format.h"
#include "quant/quantized_weight.h"

namespace lowbit {

// Round-to-nearest with min-max or MSE-optimal clipping search, optionally
// weighted per input column by `importance` (diag(H), llama.cpp's imatrix idea).
// A GGUF type always runs its own scale search, weighted by `importance` when given.
struct RtnOptions {
  ScaleSearch search = ScaleSearch::kMinMax;
  std::vector<float> importance;  // [in] or empty
  float clip_min = 0.5f;          // MSE search: clip ratios 1, ..., clip_min (QuantizeOptions)
  int clip_steps = 20;
  ThreadPool* pool = nullptr;     // trellis codes: rows in parallel (the result does not depend on it)
};
Expected<QuantizedWeight> quantize_rtn(const WeightFormat& format, const float* w, int64_t rows, int64_t cols,
                                       const RtnOptions& options);

// GPTQ (Frantar et al. 2022): columns quantized one at a time, the error
// propagated through the Cholesky factor of the damped inverse Hessian. A
// column's scale group is always by its original index (the stored format has
// no permutation table); without static_groups a group's scales are chosen from
// the updated weights when the pass reaches its first column (gptq.cpp).
struct GptqOptions {
  float damp_percent = 0.01f;   // λ = damp · mean(diag H)
  int block_size = 128;         // lazy batch updates
  bool act_order = false;       // columns by descending diag(H)
  bool static_groups = false;   // group scales computed from the unmodified W before the pass
  ScaleSearch search = ScaleSearch::kMinMax;
  bool importance = false;      // scale choice of each group weighted by diag(H) (as RTN's importance)
  ThreadPool* pool = nullptr;   // trellis codes: rows in parallel (the result does not depend on it)
};
struct GptqStats {
  double proxy_error = 0.0;     // tr((W−Q) H (W−Q)ᵀ)
  int dead_columns = 0;         // diag(H) == 0: weights zeroed as GPTQ does
};
Expected<QuantizedWeight> quantize_gptq(const WeightFormat& format, const float* w, int64_t rows, int64_t cols,
                                        const std::vector<double>& hessian /* [cols, cols] */,
                                        const GptqOptions& options, GptqStats* stats = nullptr);
// GPTQ's objective, tr((W − Q) H (W − Q)ᵀ) = Σ_rows dᵀ H d with d = w − q; w, q:
// [rows, cols], H: [cols, cols] symmetric. In double.
double hessian_proxy_error(const float* w, const float* q, int64_t rows, int64_t cols,
                           const std::vector<double>& hessian);

// EasyQuant (Tang et al. 2023), data-free: the largest-magnitude fraction of
// weights kept exactly in a sparse table, each group's range optimised for
// reconstruction error of the rest.
struct EasyQuantOptions {
  float outlier_fraction = 0.005f;  // per row: round(fraction · cols) largest |w| kept exactly
  int search_steps = 40;            // clip ratios 1, 1 − (1 − clip_min)/steps, ..., clip_min per block
  float clip_min = 0.5f;
};
Expected<QuantizedWeight> quantize_easyquant(const BlockFormat& format, const float* w, int64_t rows, int64_t cols,
                                             const EasyQuantOptions& options);

// LoRC (ZeroQuant-V2): adds the rank-r truncated SVD of W − dequant(Q) as U·V,
// U = U_r·sqrt(Σ_r), V = sqrt(Σ_r)·V_rᵀ, each stored in `factor_format`.
Status add_lowrank_correction(QuantizedWeight& q, const float* w, int rank, const std::string& factor_format);

// AWQ (Lin et al. 2023) scale search for the linears sharing one input:
// s_j = mean|x_j|^α, α on a grid in [0, 1]; picks α minimising
// Σ_linears ‖X Wᵀ − (X/s) Q(W·diag(s))ᵀ‖² on the calibration rows X [n, in].
struct AwqSearch {
  int grid = 20;
};
struct AwqResult {
  float alpha = 0.0f;
  std::vector<float> scales;  // [in]; fold 1/s into the previous op, W·diag(s) is quantized
  double error = 0.0;
};
Expected<AwqResult> search_awq_scales(const WeightFormat& format, const std::vector<const float*>& weights,
                                      const std::vector<int64_t>& rows, int64_t cols, const float* x, int64_t n,
                                      const std::vector<float>& mean_abs_x, const AwqSearch& options);

}  // namespace lowbit
