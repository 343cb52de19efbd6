#include "pipeline/inspect_variants.h"

#include <fmt/format.h>

#include "pipeline/awq_fold.h"
#include "pipeline/outlier_migration.h"
#include "pipeline/rotation.h"

namespace lowbit {
namespace {

// kInputPoints[p] is the input of AwqGroup p.
constexpr std::array<AwqGroup, kInputPoints.size()> kPointGroups = {AwqGroup::kQkv, AwqGroup::kOut, AwqGroup::kGateUp,
                                                                    AwqGroup::kDown};

}  // namespace

Expected<InspectVariant> inspect_plain(const ModelConfig& config, ModelWeights weights,
                                       const CalibrationSet& calibration, const InspectOptions& options,
                                       ThreadPool& pool) {
  LB_ASSIGN_OR_RETURN(ModelInspection r, inspect_model(config, std::move(weights), calibration, options, pool));
  return InspectVariant{"none", "the model as loaded, FP32", std::move(r)};
}

Expected<InspectVariant> inspect_rotated(ModelConfig config, ModelWeights weights, const RotationSpec& spec,
                                         const CalibrationSet& calibration, const InspectOptions& options,
                                         ThreadPool& pool, std::vector<std::string>& notes) {
  const ModelRotations rotations = ModelRotations::create(config, spec);
  for (const std::string& n : rotations.notes()) notes.push_back("rot: " + n);
  LB_RETURN_IF_ERROR(rotate_model(weights, config, spec).with_context("rotation"));
  const std::optional<Rotation> down = online_down_rotation(config, spec);
  InspectOptions o = options;
  o.online_down = down ? &*down : nullptr;
  LB_ASSIGN_OR_RETURN(ModelInspection r, inspect_model(config, std::move(weights), calibration, o, pool));
  std::string what = fmt::format("QuaRot rotation, residual {}", rotations.residual.describe());
  if (down) what += fmt::format(", online {} on the down_proj input", down->describe());
  return InspectVariant{"rot", what, std::move(r)};
}

Status fold_smoothquant(ModelWeights& weights, const ModelConfig& config, const ModelInspection& plain, float alpha) {
  if (plain.layers.size() != weights.layers.size()) {
    return make_error("SmoothQuant: statistics of {} layers for a model of {}", plain.layers.size(),
                      weights.layers.size());
  }
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    LayerWeights& w = weights.layers[i];
    for (size_t p = 0; p < kInputPoints.size(); ++p) {
      const AwqGroup group = kPointGroups[p];
      std::vector<MigrationLinear> linears;
      for (const std::string& suffix : awq_group_linears(group)) {
        linears.push_back({&linear_matrix(w, suffix), nullptr, {}});
      }
      std::vector<float> s = smoothquant_scales(plain.layers[i].inputs[p].channel_max, linears, alpha);
      if (group == AwqGroup::kOut) s = gqa_shared_channels(s, config);
      LB_RETURN_IF_ERROR(fold_awq_scales(w, config, static_cast<int>(i), group, s));
    }
  }
  return Status::ok_status();
}

Expected<InspectVariant> inspect_smoothed(const ModelConfig& config, ModelWeights weights,
                                          const ModelInspection& plain, float alpha,
                                          const CalibrationSet& calibration, const InspectOptions& options,
                                          ThreadPool& pool) {
  LB_RETURN_IF_ERROR(fold_smoothquant(weights, config, plain, alpha));
  LB_ASSIGN_OR_RETURN(ModelInspection r, inspect_model(config, std::move(weights), calibration, options, pool));
  return InspectVariant{
      "smooth",
      fmt::format("SmoothQuant alpha {:g} folded into attn_norm, v_proj->o_proj, ffn_norm, up_proj->down_proj", alpha),
      std::move(r)};
}

}  // namespace lowbit
