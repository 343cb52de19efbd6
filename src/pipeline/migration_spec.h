// Recipe keys for moving activation outliers into the weights before
// quantization (pipeline/outlier_migration.h), both optional and top-level:
//   "smooth": {"alpha": 0.5, "search": false, "grid": 10, "tokens": 512, "groups": ["qkv", "gateup"]}
//       SmoothQuant with a fixed α, or α searched per layer and group on the grid
//       0, 1/grid, ..., 1 (search: true) on `tokens` sampled calibration rows.
//   "osp":    {"grid": 20, "tokens": 512, "groups": ["qkv", "gateup"]}
//       Outlier Suppression+: channel shift and scale, threshold t searched on `grid` points.
// Groups are the linears sharing an input: "qkv", "gateup", "out" (o_proj, folded
// into v_proj: scales into its rows, an OS+ shift into its bias) and, for
// SmoothQuant only, "down" (down_proj, folded into up_proj: its input cannot be
// shifted exactly). A group may not be named by both.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "pipeline/awq_fold.h"

namespace lowbit {

struct SmoothSpec {
  float alpha = 0.5f;  // [0, 1]
  bool search = false;
  int grid = 10;
  int tokens = 512;
  std::vector<AwqGroup> groups = {AwqGroup::kQkv, AwqGroup::kGateUp};
};

struct OspSpec {
  int grid = 20;
  int tokens = 512;
  std::vector<AwqGroup> groups = {AwqGroup::kQkv, AwqGroup::kGateUp};
};

// "qkv" | "out" | "gateup" | "down".
Expected<AwqGroup> migration_group_from_key(const std::string& key, const std::string& where);
const char* migration_group_key(AwqGroup g);

// Errors name `where` ("recipe FILE: smooth").
Expected<SmoothSpec> parse_smooth_spec(const nlohmann::json& j, const std::string& where);
Expected<OspSpec> parse_osp_spec(const nlohmann::json& j, const std::string& where);
// A group in both is an error.
Status check_migration_groups(const SmoothSpec* smooth, const OspSpec* osp, const std::string& where);

}  // namespace lowbit
