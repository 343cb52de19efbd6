#include "pipeline/inspect_summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <sstream>

namespace lowbit {
namespace {

// The points whose channels are model dimensions, comparable across layers.
bool residual_width(int point) { return point == kResidualPoint || point == 0 || point == 2; }

std::vector<std::string> linears_of(int layer, int point) {
  std::vector<std::string> names;
  std::istringstream in(kInputPoints[static_cast<size_t>(point)].linears);
  std::string suffix;
  while (in >> suffix) names.push_back(fmt::format("layers.{}.{}", layer, suffix));
  return names;
}

}  // namespace

const char* point_name(int point) {
  return point == kResidualPoint ? "residual" : kInputPoints[static_cast<size_t>(point)].name;
}

const MatrixStats& point_stats(const ModelInspection& m, int layer, int point) {
  return point == kResidualPoint ? m.residual[static_cast<size_t>(layer)]
                                 : m.layers[static_cast<size_t>(layer)].inputs[static_cast<size_t>(point)];
}

std::vector<OutlierChannel> top_outlier_channels(const ModelInspection& m, int k) {
  std::vector<OutlierChannel> all;
  for (int layer = 0; layer < m.n_layers; ++layer) {
    for (int point = kResidualPoint; point < static_cast<int>(kInputPoints.size()); ++point) {
      const MatrixStats& s = point_stats(m, layer, point);
      if (s.median_channel_max <= 0.0) continue;
      for (const ChannelValue& c : s.top) {
        all.push_back({layer, point, c.channel, c.value, c.value / s.median_channel_max});
      }
    }
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const OutlierChannel& a, const OutlierChannel& b) { return a.ratio > b.ratio; });
  if (all.size() > static_cast<size_t>(std::max(k, 0))) all.resize(static_cast<size_t>(std::max(k, 0)));
  return all;
}

std::vector<RecurringChannel> recurring_channels(const ModelInspection& m, int point, int k) {
  if (!residual_width(point)) return {};
  std::map<int64_t, RecurringChannel> by_channel;
  for (int layer = 0; layer < m.n_layers; ++layer) {
    for (const ChannelValue& c : point_stats(m, layer, point).top) {
      RecurringChannel& r = by_channel[c.channel];
      r.point = point;
      r.channel = c.channel;
      ++r.layers;
      if (c.value > r.max_value) {
        r.max_value = c.value;
        r.max_layer = layer;
      }
    }
  }
  std::vector<RecurringChannel> all;
  for (const auto& [channel, r] : by_channel) all.push_back(r);
  std::stable_sort(all.begin(), all.end(), [](const RecurringChannel& a, const RecurringChannel& b) {
    return a.layers != b.layers ? a.layers > b.layers : a.max_value > b.max_value;
  });
  if (all.size() > static_cast<size_t>(std::max(k, 0))) all.resize(static_cast<size_t>(std::max(k, 0)));
  return all;
}

std::vector<PrecisionSuggestion> suggest_mixed_precision(const ModelInspection& m, double factor) {
  std::vector<PrecisionSuggestion> out;
  for (size_t p = 0; p < kInputPoints.size(); ++p) {
    std::vector<float> absmax;
    for (const LayerInspection& l : m.layers) absmax.push_back(static_cast<float>(l.inputs[p].absmax));
    const double median = lower_median(absmax);
    for (const LayerInspection& l : m.layers) {
      if (median > 0.0 && l.inputs[p].absmax > factor * median) {
        out.push_back({l.layer, static_cast<int>(p), l.inputs[p].absmax, median,
                       linears_of(l.layer, static_cast<int>(p))});
      }
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const PrecisionSuggestion& a, const PrecisionSuggestion& b) {
    return a.layer != b.layer ? a.layer < b.layer : a.point < b.point;
  });
  return out;
}

std::string suggestion_regex(const std::vector<PrecisionSuggestion>& suggestions) {
  // One alternative per point: ^layers\.(i|j)\.(suffixes)$
  std::string regex;
  for (size_t p = 0; p < kInputPoints.size(); ++p) {
    std::vector<int> layers;
    for (const PrecisionSuggestion& s : suggestions) {
      if (s.point == static_cast<int>(p)) layers.push_back(s.layer);
    }
    if (layers.empty()) continue;
    std::string layer_alt;
    for (size_t i = 0; i < layers.size(); ++i) layer_alt += (i == 0 ? "" : "|") + std::to_string(layers[i]);
    std::string suffixes = kInputPoints[p].linears;
    std::replace(suffixes.begin(), suffixes.end(), ' ', '|');
    if (!regex.empty()) regex += "|";
    regex += fmt::format("^layers\\.({})\\.({})$", layer_alt, suffixes);
  }
  return regex;
}

}  // namespace lowbit
