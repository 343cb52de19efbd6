#include "model/rotation_spec.h"

namespace lowbit {

nlohmann::json rotation_spec_to_json(const RotationSpec& spec) {
  return {{"seed", spec.seed}, {"online_down", spec.online_down}, {"rotate_v_heads", spec.rotate_v_heads}};
}

Expected<RotationSpec> rotation_spec_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return make_error("{}: rotation must be a JSON object", where);
  RotationSpec spec;
  for (const auto& [key, value] : j.items()) {
    if (key == "seed") {
      const bool negative = value.is_number_integer() && !value.is_number_unsigned() && value.get<int64_t>() < 0;
      if (!value.is_number_integer() || negative) {
        return make_error("{}: rotation.seed must be a non-negative integer", where);
      }
      spec.seed = value.get<uint64_t>();
    } else if (key == "online_down" || key == "rotate_v_heads") {
      if (!value.is_boolean()) return make_error("{}: rotation.{} must be true or false", where, key);
      (key == "online_down" ? spec.online_down : spec.rotate_v_heads) = value.get<bool>();
    } else if (key != "transforms") {
      return make_error("{}: unknown rotation key '{}' (seed, online_down, rotate_v_heads)", where, key);
    }
  }
  return spec;
}

ModelRotations ModelRotations::create(const ModelConfig& c, const RotationSpec& spec) {
  ModelRotations r;
  r.residual = Rotation::create(c.dim, spec.seed, true);
  r.down = online_down_rotation(c, spec);
  if (spec.rotate_v_heads) r.v_head = Rotation::create(c.head_dim, spec.seed + 2, false);
  return r;
}

std::vector<std::string> ModelRotations::notes() const {
  std::vector<std::string> out;
  if (!residual.note().empty()) out.push_back("residual stream: " + residual.note());
  if (down && !down->note().empty()) out.push_back("down_proj input: " + down->note());
  if (v_head && !v_head->note().empty()) out.push_back("v heads: " + v_head->note());
  return out;
}

nlohmann::json ModelRotations::describe() const {
  nlohmann::json j = {{"residual", residual.describe()}};
  if (down) j["down"] = down->describe();
  if (v_head) j["v_heads"] = v_head->describe();
  return j;
}

std::optional<Rotation> online_down_rotation(const ModelConfig& c, const RotationSpec& spec) {
  if (!spec.online_down) return std::nullopt;
  return Rotation::create(c.ffn_dim, spec.seed + 1, false);
}

}  // namespace lowbit
