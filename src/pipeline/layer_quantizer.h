// One decoder layer of the sequential pipeline (GPTQ's scheme, Frantar et al.
// 2022, section 4): the layer's calibration inputs are the outputs of the
// already-quantized layers before it.
//   0. SmoothQuant / Outlier Suppression+ (recipe "smooth" / "osp"): channel
//      ranges of the FP32 layer's inputs, shift and scale chosen per group and folded
//      (pipeline/outlier_migration.h); everything after sees the migrated layer.
//   1. Statistics pass over the FP32 layer: H = XᵀX of each linear input (only
//      q/k/v's under true-sequential), mean|x| and sampled rows for AWQ groups,
//      the mean x̄ of each input where a rule asks for bias correction.
//   2. AWQ: scales searched per group on the FP32 layer and folded (awq_fold.h);
//      the statistics of a folded input are rescaled (H ← D⁻¹ H D⁻¹, D = diag(s)).
//   3. Linears quantized in forward order, phase by phase: q/k/v, o, gate/up, down.
//      Under true-sequential, phases after the first re-run the block (earlier
//      phases already quantized) to collect their input's H (and x̄).
//      Bias correction adds (W − Ŵ) x̄ to the linear's bias, creating one.
//      A rule with "act" wraps the quantized linear in its activation quantizer
//      (model/act_quant_linear.h) and stores the spec in the linear's record; a
//      per-tensor static threshold is clip · max|x| of the input in step 1 (after
//      AWQ's fold; refreshed per phase under true-sequential).
//   4. The quantized block is run on the inputs, in place: the next layer's inputs.
// Without calibration data only step 3 runs, without statistics. Every tensor of
// the layer is written to the output as soon as it is final.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "kernels/orthogonal_rotation.h"
#include "model/config.h"
#include "model/lowbit_file.h"
#include "model/weights.h"
#include "pipeline/activation_stats.h"
#include "pipeline/calibration_shards.h"
#include "pipeline/layer_runner.h"
#include "pipeline/recipe.h"

namespace lowbit {

struct ModuleReport {
  std::string name;
  std::string method;
  std::string format;         // the format stored
  std::string fallback_from;  // the rule's format when its "fallback" replaced it (recipe.h), else ""
  int64_t rows = 0;
  int64_t cols = 0;
  double bits_per_weight = 0.0;  // stored bits / (rows · cols), side tables included
  uint64_t stored_bytes = 0;
  double weight_rel_error = 0.0;           // ‖W − Ŵ‖² / ‖W‖²
  std::optional<double> output_rel_error;  // ‖XWᵀ − XŴᵀ‖² / ‖XWᵀ‖² on the calibration inputs
  std::optional<float> awq_alpha;
  // SmoothQuant / OS+ of the linear's input group (pipeline/outlier_migration.h):
  std::string migration;                       // "smooth" | "osp" | "" (none)
  std::optional<float> migration_parameter;    // α or the OS+ threshold t
  std::optional<double> migration_error_plain;  // the searches' E without migration
  std::optional<double> migration_error;        // and at the chosen parameter
  int dead_columns = 0;
  size_t outliers = 0;
  int lorc_rank = 0;
  // AdaQuant (quant/adaquant.h): weights and scale groups it changed (0 when it kept
  // the method's result or did not run); bias correction: whether the bias took it
  // (stored_bytes and bits_per_weight then count the FP32 bias the correction created).
  int64_t adaquant_codes_changed = 0;
  int64_t adaquant_scales_changed = 0;
  bool bias_corrected = false;
  double seconds = 0.0;
};

// Calibration hidden states carried from layer to layer: this rank's windows
// (all of them in one process), a contiguous shard of the calibration (docs/MPI.md).
struct CalibrationState {
  LayerRunner* runner = nullptr;
  int n_seq = 0;
  float* x = nullptr;  // [n_seq, seq_len, dim], replaced by the layer's outputs
};

struct LayerQuantizerContext {
  const ModelConfig* config = nullptr;
  const Recipe* recipe = nullptr;
  const std::vector<float>* rope_freq_factors = nullptr;
  ThreadPool* pool = nullptr;
  HessianPrecision hessian = HessianPrecision::kFp64;
  // The calibration forward's products: FP32, or BF16 with FP32 sums (the linears as
  // Bf16Linear, attention_bf16; pipeline/calibration.h). The quantizers' own
  // arithmetic (GPTQ in FP64) is unchanged.
  CalibArithmetic arithmetic = CalibArithmetic::kFp32;
  std::optional<CalibrationState> calibration;  // none: data-free quantization
  // The ranks sharing the calibration (null: one process): statistics are reduced
  // over it after every pass, and every rank quantizes the layer identically.
  Communicator* comm = nullptr;
  // This rank's share of the calibration (x holds its windows) and where the sums'
  // shards start; null: one process, one shard.
  const CalibrationShards* shards = nullptr;
  LowbitFileWriter* writer = nullptr;  // null: this rank writes nothing (MPI ranks but 0)
  // Called before each linear with its name and parameter count (rows · cols), for progress.
  std::function<void(const std::string&, int64_t)> on_module;
  // Called before step 4 replaces the calibration hidden states in place (the
  // pipeline finishes a checkpoint that is still reading them).
  std::function<void()> before_states_update;
  // Whether the states after the last layer are read (an lm_head weighted by
  // importance); if not, the last layer skips step 4 (a 2048-token window's pass
  // through the quantized layer, for nothing).
  bool last_layer_states_needed = true;
  // The online transform H of down_proj's input when the weights are rotated with
  // online_down (pipeline/rotation.h): the layer's w.down_proj is W·H, blocks run it
  // as OnlineHadamardLinear and its statistics are of x·H. Null: none.
  const Rotation* online_down = nullptr;
};

// Quantizes decoder layer `index` (FP32 weights `w`, consumed) and writes its tensors.
Expected<std::vector<ModuleReport>> quantize_layer(const LayerQuantizerContext& ctx, int index, LayerWeights w);

}  // namespace lowbit
