// The KV configuration file: a KvSpec with per-layer (key bits, value bits)
// (KVTuner's precision pairs) and NUQ codebooks, saved by calibration and used
// as `--kv FILE`. JSON:
//   {"format": "lowbit-kv-config", "version": 1,
//    "spec": "k3v3-kivi-r128",                    shared parts (kv_spec.h); kNvM gives the
//                                                 bits of layers not listed below
//    "layers": [{"k_bits": 4, "v_bits": 2}, ...], optional, one per layer
//    "codebooks": [{"key": [...], "value": [...]}, ...],  optional (kv_codebooks.h)
//    "key_order": [[...], ...],                   optional, -reorder's permutation of the key
//                                                 channels per layer (kv_channel_order.h)
//    "calibration": {...}}                        optional, informational (tuning results)
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "kvcache/kv_spec.h"

namespace lowbit {

nlohmann::json kv_config_to_json(const KvSpec& spec, const nlohmann::json& calibration = nullptr);
// `source` names the file in errors.
Expected<KvSpec> kv_config_from_json(const nlohmann::json& j, const std::string& source);

// Written to a temporary name and renamed.
Status save_kv_config(const std::string& path, const KvSpec& spec, const nlohmann::json& calibration = nullptr);
Expected<KvSpec> load_kv_config(const std::string& path);

// The argument of --kv: an existing file is a configuration file, anything else a spec.
Expected<KvSpec> resolve_kv_argument(const std::string& arg);

}  // namespace lowbit
