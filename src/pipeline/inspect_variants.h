// The runs `lowbit inspect --after none|rot|smooth|all` compares, each an
// inspect_model() (inspect.h) of the same FP function on different weights:
//   none    the weights as loaded;
//   rot     QuaRot rotation (rotation.h: norms folded, residual stream rotated by
//           a randomized Hadamard Q, online Hadamard on the down_proj input);
//   smooth  SmoothQuant (outlier_migration.h) with one α for every layer, scales
//           from the channel maxima of the `none` run, folded into all four input
//           groups (attention and FFN norms, v_proj → o_proj, up_proj → down_proj).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "model/rotation_spec.h"
#include "model/weights.h"
#include "pipeline/calibration.h"
#include "pipeline/inspect.h"

namespace lowbit {

Expected<InspectVariant> inspect_plain(const ModelConfig& config, ModelWeights weights,
                                       const CalibrationSet& calibration, const InspectOptions& options,
                                       ThreadPool& pool);

// notes: receives one line per rotation that fell back to a random orthogonal matrix.
Expected<InspectVariant> inspect_rotated(ModelConfig config, ModelWeights weights, const RotationSpec& spec,
                                         const CalibrationSet& calibration, const InspectOptions& options,
                                         ThreadPool& pool, std::vector<std::string>& notes);

// Folds SmoothQuant scales s_j = max|X_j|^α / max|W_j|^(1−α) into every layer of
// `weights`, max|X_j| from `plain` (a run of the same weights), in place. The o_proj
// scales are averaged over the heads sharing a KV head (awq_fold.h).
Status fold_smoothquant(ModelWeights& weights, const ModelConfig& config, const ModelInspection& plain, float alpha);

Expected<InspectVariant> inspect_smoothed(const ModelConfig& config, ModelWeights weights,
                                          const ModelInspection& plain, float alpha,
                                          const CalibrationSet& calibration, const InspectOptions& options,
                                          ThreadPool& pool);

}  // namespace lowbit
