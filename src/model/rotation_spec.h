// What a QuaRot-style rotation of a model is (pipeline/rotation.h applies it to
// the weights; the runtime applies the online part), and the orthogonal matrices
// it implies for a model's shapes. Stored in a lowbit model file under the header
// key lowbit.rotation (docs/FORMAT.md) so the runtime can rebuild the online
// transform exactly: every matrix is a deterministic function of (shape, seed).
//
// Matrices, for a config with dim, ffn_dim, head_dim:
//   residual  Q_dim: randomized Hadamard of order dim, signs from `seed`
//   down      H_ffn: plain Hadamard of order ffn_dim (seed + 1 for the fallback)
//   v heads   H_hd:  plain Hadamard of order head_dim (seed + 2 for the fallback)
// each a seeded random orthogonal matrix instead when the order has no known
// Hadamard matrix (kernels/orthogonal_rotation.h; notes() says which).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/orthogonal_rotation.h"
#include "model/config.h"

namespace lowbit {

struct RotationSpec {
  uint64_t seed = 0;
  bool online_down = true;      // H_ffn folded into down_proj, applied to its input at run time
  bool rotate_v_heads = false;  // H_hd folded into v_proj rows and o_proj columns (no runtime cost)
};

// {"seed": 0, "online_down": true, "rotate_v_heads": false}
nlohmann::json rotation_spec_to_json(const RotationSpec& spec);
// Accepts the keys above (all optional, defaults as in RotationSpec) and, in a
// model file, "transforms" (descriptive, ignored); other keys and wrong types are
// errors naming `where`.
Expected<RotationSpec> rotation_spec_from_json(const nlohmann::json& j, const std::string& where);

struct ModelRotations {
  Rotation residual;              // [dim, dim]
  std::optional<Rotation> down;   // [ffn_dim, ffn_dim] when spec.online_down
  std::optional<Rotation> v_head; // [head_dim, head_dim] when spec.rotate_v_heads

  static ModelRotations create(const ModelConfig& config, const RotationSpec& spec);
  // One line per rotation that fell back to a random orthogonal matrix.
  std::vector<std::string> notes() const;
  // {"residual": "hadamard 576 = 16·36, random signs", "down": ..., "v_heads": ...}
  nlohmann::json describe() const;
};

// The online transform of down_proj's input a spec implies (null when none).
std::optional<Rotation> online_down_rotation(const ModelConfig& config, const RotationSpec& spec);

}  // namespace lowbit
