// Non-uniform KV codebooks (KVQuant's NUQ datatype): per layer, one sorted table
// of 2^bits levels for keys and one for values, fitted offline by Lloyd's
// algorithm (nuq_fit.h) on calibration keys/values normalised per scale group to
// [-1, 1]. At run time a group stores a scale s and a centre z (FP16) and element
// x is coded as the level nearest to (x - z) / s; a uniform codebook is exactly
// the integer grid, so a fitted one is never worse on the calibration data.
//
// This struct is what a model file stores: to_json/from_json for the KV
// configuration file (`--kv FILE`), to_bytes/from_bytes for a binary container:
//   u32 n_layers, then per layer: u32 n_key_levels, f32 levels[n], u32 n_value_levels, f32 levels[n]
// (all little-endian; n = 0 for a tensor without a codebook).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace lowbit {

struct KvLayerCodebooks {
  std::vector<float> key;    // ascending levels in about [-1, 1]; empty = none
  std::vector<float> value;  // ascending levels; empty = none
  bool operator==(const KvLayerCodebooks&) const = default;
};

struct KvCodebooks {
  std::vector<KvLayerCodebooks> layers;  // [n_layers], or empty when none were fitted

  bool empty() const { return layers.empty(); }
  bool operator==(const KvCodebooks&) const = default;

  nlohmann::json to_json() const;
  // `source` names the file in errors.
  static Expected<KvCodebooks> from_json(const nlohmann::json& j, const std::string& source);
  std::vector<uint8_t> to_bytes() const;
  static Expected<KvCodebooks> from_bytes(const uint8_t* data, size_t size, const std::string& source);
};

// Levels must be 2..256 finite, strictly increasing values; errors name `what`.
Status check_codebook_levels(const std::vector<float>& levels, const std::string& what);

}  // namespace lowbit
