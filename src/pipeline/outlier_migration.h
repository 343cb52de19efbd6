// Moving activation outliers into the weights before quantization, so that the
// FP model computes exactly the same function (folds of awq_fold.h):
//
// SmoothQuant (Xiao et al. 2023, eq. 4): for a group of linears sharing input X
// (q/k/v, gate/up; also o via v_proj and down via up_proj),
//   s_j = max_t |X_tj|^α / max_i |W_ij|^(1−α)      (max over the rows of every linear of the group)
//   X → X diag(s)⁻¹ (folded into the RMSNorm weight), W → W diag(s).
//
// Outlier Suppression+ (Wei et al. 2023, sections 4.1-4.2): a channel shift
//   z_j = (max_t X_tj + min_t X_tj) / 2
// centres each channel, then a channel scale s_j = max(1, max_t |X_tj − z_j| / t):
//   X → (X − z) diag(s)⁻¹,  W → W diag(s),  b → b + W z.
// The shift is subtracted after the RMSNorm through a norm bias (LayerWeights::
// attn_norm_bias / ffn_norm_bias, −z/s after scaling), so it applies to the q/k/v
// and gate/up inputs. o_proj's input is shifted through v_proj's bias, as the
// paper does: query head h's attention output is Σ_j p_hj v_j with Σ_j p_hj = 1,
// so v_proj's bias −= z moves it by exactly −z (up to the float rounding of the
// softmax sum). With grouped-query attention the heads of a KV group read the
// same values, so their shifts must be equal channel for channel: the o_proj
// ranges are first merged over each group's heads (gqa_union_range), which makes
// the midpoints, and the scales derived from them, equal within a group.
// down_proj's input silu(g)·u cannot be shifted exactly (a shift of u would need
// one of silu(g) per token).
// The threshold t is searched on the grid t_k = r_max · k / grid, k = 1..grid,
// r_max = max_j (max_j − min_j) / 2 (t = r_max: shift only).
//
// Both searches (SmoothQuant's α when asked, OS+'s t always) minimise the output
// error of the group's linears after quantizing weights and activations, on
// calibration rows X [n, in]:
//   E = Σ_linears ‖(X − z) Wᵀ − Q_a((X − z) diag(s)⁻¹) · Q_w(W diag(s))ᵀ‖²_F / Σ ‖X Wᵀ‖²_F
// (the shift returns exactly through the bias W z, so the numerator is the whole
// output error and E compares across shifts)
// with Q_w = round-to-nearest in the linear's weight format (min-max scales, a
// GGUF type's own search; none for FP32 weights) and Q_a = the linear's activation quantizer (a per-tensor
// static threshold is clip · max |X̃| over the rows; none when the rule has no act).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "model/linear.h"
#include "model/weights.h"
#include "pipeline/awq_fold.h"
#include "quant/act_quant.h"
#include "quant/weight_format.h"

namespace lowbit {

// Per-channel signed minimum and maximum of the inputs of the named linears
// (reduced to their shared-input leader, activation_stats.h), over every token.
class ChannelRange : public ActivationObserver {
 public:
  explicit ChannelRange(const std::vector<std::string>& names);
  void observe(const std::string& linear_name, const float* x, int64_t n_tokens, int64_t in_features) override;

  struct Range {
    std::vector<float> min, max;  // [in]
    int64_t n_tokens = 0;
  };
  // Null when the input was not selected or not seen.
  const Range* find(const std::string& linear_name) const;

  // The ranges over every rank's windows (exact: minima and maxima), on every rank.
  Status reduce(Communicator& comm);

 private:
  std::map<std::string, Range> ranges_;  // by leader; selected ones exist from the start
};

// One linear of a group, as the searches see it.
struct MigrationLinear {
  const Matrix* weight = nullptr;              // [out, in], FP32, before the migration
  const WeightFormat* weight_format = nullptr;  // null: weights stay FP32
  std::optional<ActQuantSpec> act;             // none: FP32 inputs
};

// E above for shift z [in] (empty = none) and scale s [in]; x: [rows, in].
Expected<double> migration_error(const std::vector<MigrationLinear>& linears, const float* x, int64_t rows,
                                 int64_t in, const std::vector<float>& shift, const std::vector<float>& scale,
                                 ThreadPool& pool);

// SmoothQuant's s for one α; channels with max|X_j| = 0 or max|W_j| = 0 get 1,
// and s is clamped to [1e-5, 1e5].
std::vector<float> smoothquant_scales(const std::vector<float>& x_abs_max, const std::vector<MigrationLinear>& linears,
                                      float alpha);

struct MigrationResult {
  std::vector<float> shift;  // [in], empty for SmoothQuant
  std::vector<float> scale;  // [in]
  float parameter = 0.0f;    // α (SmoothQuant) or t (OS+)
  double error = 0.0;        // E at the chosen parameter (0 when not searched)
  double error_plain = 0.0;  // E without migration (0 when not searched)
};

// α on the grid 0, 1/grid, ..., 1 minimising E (the smallest α among equals).
Expected<MigrationResult> search_smoothquant_alpha(const std::vector<MigrationLinear>& linears,
                                                   const std::vector<float>& x_abs_max, const float* x, int64_t rows,
                                                   int64_t in, int grid, ThreadPool& pool);

// OS+: z from the range, t on the grid above minimising E (the largest t among equals).
Expected<MigrationResult> search_outlier_suppression(const std::vector<MigrationLinear>& linears,
                                                     const ChannelRange::Range& range, const float* x, int64_t rows,
                                                     int64_t in, int grid, ThreadPool& pool);

// The o_proj input range with each channel's minimum and maximum taken over
// the query heads of its KV group (channel h·head_dim + d of head h, for every
// head of the group): min and max [q_dim], equal across a group's heads.
ChannelRange::Range gqa_union_range(const ChannelRange::Range& range, const ModelConfig& config);

// Shifts the group's input by −z exactly: kQkv / kGateUp: the norm bias −= z and
// each linear's bias += W z; kOut (z [q_dim], equal across each KV group's heads,
// else an error naming the channel): v_proj's bias −= z of the group's first head
// and o_proj's bias += W_o z. Biases are created when absent. kDown is refused.
Status fold_channel_shift(LayerWeights& layer, const ModelConfig& config, int layer_index, AwqGroup group,
                          const std::vector<float>& z);

}  // namespace lowbit
