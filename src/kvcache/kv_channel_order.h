// RotateKV's outlier-aware channel reordering (Su et al. 2025, "RotateKV:
// Accurate and Robust 2-Bit KV Cache Quantization for LLMs via Outlier-Aware
// Adaptive Rotations", outlier-aware rotation): before the Hadamard transform of
// the keys (-rot: one block per KV head; -rotgG: one block per group of G heads),
// the key channels of a layer are permuted so that the large ones (measured on
// calibration data) are spread evenly over the blocks. A Hadamard block turns
// one channel of magnitude M into n values of M/sqrt(n) each, but only inside its
// block: two outlier channels in the same head leave that head's block with
// twice the energy of the others and its quantization scales correspondingly
// coarse, while moved to different blocks each block gets one.
//
// The order: rank the channels by their calibration magnitude (largest first,
// ties by lower index) and deal them to the B blocks in zigzag order, rank r in
// round r / B to block r % B on even rounds and B - 1 - r % B on odd ones
// (0, 1, .., B-1, B-1, .., 1, 0, 0, 1, ..), each block's channels in the order
// dealt. So each block gets one of the B largest, and the zigzag evens out the
// sums of the following rounds. With one block (-rotgG over all KV heads) the
// order only sorts the channels: the Hadamard mixes them all either way.
//
// The cache stores key row x as y = (x·P)·H/sqrt(n): y_j is computed from x at
// channel order[j] (a gather, exact), and reading returns y·Hᵀ/sqrt(n)·Pᵀ, the
// keys in their own basis, so the queries meet them unchanged (q·k as the FP32
// cache computes it, up to the rounding of the two transforms); a query head
// attends to one KV head, and a permutation across heads could not be matched on
// the query side. Values are not reordered.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace lowbit {

// Bounds on what a configuration file may hold (far above any model's layers and kv_dim).
constexpr int64_t kMaxChannelOrderLayers = int64_t{1} << 16;
constexpr int64_t kMaxChannelOrderWidth = int64_t{1} << 20;

struct KvChannelOrder {
  // [n_layers][kv_dim]: stored key channel j holds channel layers[l][j]; empty = none fitted.
  std::vector<std::vector<int32_t>> layers;

  bool empty() const { return layers.empty(); }
  bool operator==(const KvChannelOrder&) const = default;

  nlohmann::json to_json() const;
  // The "key_order" field: an array of layers, each a permutation of 0..n-1 with the same n;
  // errors are one line naming `source` and the entry ("key_order[3][7]").
  static Expected<KvChannelOrder> from_json(const nlohmann::json& j, const std::string& source);
};

// Errors unless `order` is a permutation of 0..width-1; they name `what` and the
// first bad entry.
Status check_channel_order(const std::vector<int32_t>& order, int64_t width, const std::string& what);

// The outlier-aware order above for channels of the given magnitudes (finite,
// >= 0) and Hadamard blocks of `block` channels (block divides the count).
Expected<std::vector<int32_t>> outlier_aware_order(const std::vector<double>& magnitude, int block);

// y[t, j] = x[t, order[j]] and its inverse x[t, order[j]] = y[t, j], rows of
// order.size() elements; out and in must not overlap.
void gather_channels(const float* x, int64_t rows, const std::vector<int32_t>& order, float* y);
void scatter_channels(const float* y, int64_t rows, const std::vector<int32_t>& order, float* x);

}  // namespace lowbit
