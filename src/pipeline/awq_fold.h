// Folding per-input-channel scales into a decoder layer so the FP function is
// unchanged: AWQ's (Lin et al. 2023, "apply_scale"), SmoothQuant's and Outlier
// Suppression+'s (pipeline/outlier_migration.h). A linear reading input x becomes
//   W x = (W diag(s)) (x / s),
// W diag(s) is what gets quantized, and x / s is produced by the operation before:
//   kQkv     attn_norm[j] /= s[j] (and its bias);   q, k, v columns j *= s[j]
//   kGateUp  ffn_norm[j]  /= s[j] (and its bias);   gate, up columns j *= s[j]
//   kOut     v_proj row c (and bias) /= s[c'];  o_proj column j *= s[j]
//            The attention output channel j = h·head_dim + d is a mix of v channel
//            c = (h / group)·head_dim + d, group = n_heads / n_kv_heads, so s must be
//            equal over the heads sharing a KV head (grouped-query attention);
//            gqa_shared_channels() makes a per-channel statistic so.
//   kDown    up_proj row k /= s[k];   down columns k *= s[k]   (silu(g)·u is linear in u)
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model/weights.h"

namespace lowbit {

enum class AwqGroup { kQkv, kOut, kGateUp, kDown };

const char* awq_group_name(AwqGroup g);
// The linear suffixes sharing the group's input, and their input width.
std::vector<std::string> awq_group_linears(AwqGroup g);
int64_t awq_group_width(AwqGroup g, const ModelConfig& config);

// v [q_dim] averaged over the heads that read the same KV head, written back to
// each of them: the result is constant over a KV group.
std::vector<float> gqa_shared_channels(const std::vector<float>& v, const ModelConfig& config);

// Applies s [width] (all > 0 and finite) to `layer`. kOut needs s constant over KV
// groups (see above); errors name the layer and the offending channel.
Status fold_awq_scales(LayerWeights& layer, const ModelConfig& config, int layer_index, AwqGroup group,
                       const std::vector<float>& s);

}  // namespace lowbit
