// `lowbit inspect`: where the outliers of a model's activations are (issue 5).
//
// Runs the FP32 model on calibration windows one decoder layer at a time (as the
// quantization pipeline does, layer_runner.h), so the hidden state entering every
// layer, [n_samples · seq_len, dim], is at hand without a hook in LlamaModel, and
// gathers for every layer:
//  - the four distinct linear inputs (inspect_stats.h): "attn_in" (q/k/v share
//    it), "o_in", "ffn_in" (gate/up share it), "down_in";
//  - the residual stream entering it (and, after the last layer, the final hidden
//    state before the output norm) with its massive activations.
// The inputs of one layer for all windows are kept until the layer is done, so
// every statistic is exact (medians, the near-zero fraction relative to the
// absmax): n_samples · seq_len · (3 · dim + ffn_dim) floats, 53 MB for
// SmolLM2-135M at 8 × 512 tokens.
//
// The same run on transformed weights (rotated, smoothed) shows what the
// transform does to the outliers; the caller transforms the weights.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kernels/orthogonal_rotation.h"
#include "model/config.h"
#include "model/weights.h"
#include "pipeline/calibration.h"
#include "pipeline/inspect_stats.h"

namespace lowbit {

// The distinct linear inputs of a decoder layer, in forward order.
struct InputPoint {
  const char* name;     // "attn_in"
  const char* leader;   // the linear whose observation is kept ("q_proj")
  const char* linears;  // the linears reading it ("q_proj k_proj v_proj")
};
inline constexpr std::array<InputPoint, 4> kInputPoints = {{
    {"attn_in", "q_proj", "q_proj k_proj v_proj"},
    {"o_in", "o_proj", "o_proj"},
    {"ffn_in", "gate_proj", "gate_proj up_proj"},
    {"down_in", "down_proj", "down_proj"},
}};

// Index into kInputPoints of a linear suffix that leads an input ("q_proj" -> 0);
// -1 for the others (k_proj, v_proj, up_proj) and unknown names.
int input_point_of_leader(const std::string& suffix);

struct InspectOptions {
  int top_k = 8;
  // QuaRot's online Hadamard H on the down_proj input (rotation.h step 3), for a
  // model whose down_proj weights hold W·H: when set, down_proj runs wrapped in
  // an OnlineHadamardLinear as the runtime runs it, and the down_in statistics
  // are of x·H, the input the wrapped layer multiplies. Null: none.
  const Rotation* online_down = nullptr;
  size_t max_massive = 10000;  // massive activations kept (the largest)
  bool progress = false;
};

struct LayerInspection {
  int layer = 0;
  std::array<MatrixStats, kInputPoints.size()> inputs;
};

struct ModelInspection {
  int n_layers = 0;
  int seq_len = 0;
  std::vector<LayerInspection> layers;  // [n_layers]
  // [n_layers + 1]: residual[i] enters layer i; residual[n_layers] leaves the last
  // layer (before the output norm). median_abs is set.
  std::vector<MatrixStats> residual;
  std::vector<MassiveActivation> massive;  // largest |value| first, at most max_massive
  int64_t massive_total = 0;               // found before the cap
  double seconds = 0.0;
};

// One run of the report: the model as loaded or transformed.
struct InspectVariant {
  std::string name;         // "none", "rot", "smooth"
  std::string description;  // one line: what was done to the weights
  ModelInspection result;
};

// Runs `weights` (consumed layer by layer) on the calibration windows.
Expected<ModelInspection> inspect_model(const ModelConfig& config, ModelWeights weights,
                                        const CalibrationSet& calibration, const InspectOptions& options,
                                        ThreadPool& pool);

}  // namespace lowbit
