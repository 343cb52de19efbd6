#include "kvcache/kv_channel_order.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "io/untrusted_json.h"

namespace lowbit {

nlohmann::json KvChannelOrder::to_json() const { return layers; }

Expected<KvChannelOrder> KvChannelOrder::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_array() || j.empty() || static_cast<int64_t>(j.size()) > kMaxChannelOrderLayers) {
    return make_error("{}: \"key_order\" must be an array of 1..{} layers, each a permutation of the key channels",
                      source, kMaxChannelOrderLayers);
  }
  KvChannelOrder order;
  order.layers.resize(j.size());
  for (size_t l = 0; l < j.size(); ++l) {
    const nlohmann::json& row = j[l];
    const size_t width = j[0].is_array() ? j[0].size() : 0;
    if (!row.is_array() || row.empty() || static_cast<int64_t>(row.size()) > kMaxChannelOrderWidth) {
      return make_error("{}: key_order[{}] must be an array of 1..{} channel indices", source, l,
                        kMaxChannelOrderWidth);
    }
    if (row.size() != width) {
      return make_error("{}: key_order[{}] has {} channels, key_order[0] {}", source, l, row.size(), width);
    }
    std::vector<int32_t>& out = order.layers[l];
    out.reserve(width);
    for (size_t i = 0; i < width; ++i) {
      // Non-negative JSON integers parse as unsigned; anything else is not an index.
      if (!row[i].is_number_unsigned() || row[i].get<uint64_t>() >= width) {
        return make_error("{}: key_order[{}][{}] = {} is not a channel index in [0, {})", source, l, i,
                          dump_json(row[i]), width);
      }
      out.push_back(static_cast<int32_t>(row[i].get<uint64_t>()));
    }
    LB_RETURN_IF_ERROR(check_channel_order(out, static_cast<int64_t>(width), fmt::format("{}: key_order[{}]", source, l)));
  }
  return order;
}

Status check_channel_order(const std::vector<int32_t>& order, int64_t width, const std::string& what) {
  if (static_cast<int64_t>(order.size()) != width) {
    return make_error("{}: {} channels for keys of {} channels", what, order.size(), width);
  }
  std::vector<int64_t> first(order.size(), -1);  // position where each channel appeared
  for (size_t j = 0; j < order.size(); ++j) {
    const int32_t c = order[j];
    if (c < 0 || c >= width) return make_error("{}: entry {} = {} is not a channel index in [0, {})", what, j, c, width);
    if (first[c] >= 0) return make_error("{}: not a permutation: channel {} at entries {} and {}", what, c, first[c], j);
    first[c] = static_cast<int64_t>(j);
  }
  return Status::ok_status();
}

Expected<std::vector<int32_t>> outlier_aware_order(const std::vector<double>& magnitude, int block) {
  const int64_t n = static_cast<int64_t>(magnitude.size());
  if (n == 0 || block <= 0 || n % block != 0) {
    return make_error("channel order: {} channels do not split into blocks of {}", n, block);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!(std::isfinite(magnitude[i]) && magnitude[i] >= 0.0)) {
      return make_error("channel order: magnitude of channel {} is {} (must be finite and >= 0)", i, magnitude[i]);
    }
  }
  std::vector<int32_t> ranked(n);
  std::iota(ranked.begin(), ranked.end(), 0);
  std::stable_sort(ranked.begin(), ranked.end(), [&](int32_t a, int32_t b) { return magnitude[a] > magnitude[b]; });
  const int64_t blocks = n / block;
  std::vector<int32_t> order(n);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t round = r / blocks, at = r % blocks;
    const int64_t b = round % 2 == 0 ? at : blocks - 1 - at;
    order[b * block + round] = ranked[r];
  }
  return order;
}

void gather_channels(const float* x, int64_t rows, const std::vector<int32_t>& order, float* y) {
  const int64_t w = static_cast<int64_t>(order.size());
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t j = 0; j < w; ++j) y[t * w + j] = x[t * w + order[j]];
  }
}

void scatter_channels(const float* y, int64_t rows, const std::vector<int32_t>& order, float* x) {
  const int64_t w = static_cast<int64_t>(order.size());
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t j = 0; j < w; ++j) x[t * w + order[j]] = y[t * w + j];
  }
}

}  // namespace lowbit
