// Calibration of a KV spec on a model: collecting the keys and values the cache
// would store (after rotation, before RoPE when the spec says so) from
// calibration sequences, and fitting the NUQ codebooks (nuq_fit.h, with Q-Norm
// under -qnorm) on them; and -reorder's key channel order (kv_channel_order.h)
// from the keys before rotation. Fit the order first: the codebooks are fitted
// on what the cache stores, which the order changes.
// These run the model, so this file sits above model/ and eval/, beside the CLI.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kvcache/kv_codebooks.h"
#include "kvcache/kv_spec.h"
#include "kvcache/nuq_fit.h"
#include "model/llama_model.h"

namespace lowbit {

struct KvCalibrationOptions {
  int64_t max_samples = int64_t{1} << 18;  // per layer and tensor; evenly strided beyond this
  LloydOptions lloyd;
};

// The spec with every tensor stored as FP32 but the same rotation and RoPE
// placement: its cache holds exactly what the spec's codecs would code.
KvSpec kv_spec_as_fp32_storage(const KvSpec& spec);

// Per layer, Lloyd codebooks for every NUQ tensor of the spec, fitted on the
// element-domain values of that tensor's scale groups (sinks excluded, sparse
// outliers excluded) over all sequences; layers without NUQ get empty tables.
Expected<KvCodebooks> fit_kv_codebooks(const LlamaModel& model, const std::vector<std::vector<int32_t>>& sequences,
                                       const KvSpec& spec, ThreadPool& pool, const KvCalibrationOptions& options = {});

// Per layer, the outlier-aware order of the key channels for the spec's Hadamard
// blocks (rotate_group · head_dim channels), from each channel's mean |k| over all
// sequences' positions after the sinks (after RoPE unless -prerope: the keys the
// cache would rotate).
Expected<KvChannelOrder> fit_kv_key_order(const LlamaModel& model, const std::vector<std::vector<int32_t>>& sequences,
                                          const KvSpec& spec, ThreadPool& pool);

}  // namespace lowbit
