// Model-wide conclusions drawn from a ModelInspection (inspect.h): the strongest
// outlier channels over all layers, the residual-width channels that are outliers
// in many layers, and which linears a mixed-precision recipe should keep at
// higher precision (issue 5 item 5).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/inspect.h"

namespace lowbit {

// `point` indexes kInputPoints; kResidualPoint names the residual stream.
inline constexpr int kResidualPoint = -1;
// "attn_in", ..., or "residual".
const char* point_name(int point);
// The statistics of `point` at `layer` (residual: the stream entering the layer).
const MatrixStats& point_stats(const ModelInspection& m, int layer, int point);

struct OutlierChannel {
  int layer = 0;
  int point = 0;
  int64_t channel = 0;
  float value = 0.0f;  // max_t |x_tj|
  double ratio = 0.0;  // value / median channel max of the same matrix
};

// Over every layer's linear inputs and residual streams entering layers, the k
// channels with the largest ratio of their max |x| to their matrix's median
// channel max (the per-layer top-k lists are the candidates), largest first.
std::vector<OutlierChannel> top_outlier_channels(const ModelInspection& m, int k);

struct RecurringChannel {
  int point = 0;
  int64_t channel = 0;
  int layers = 0;          // layers whose top-k (MatrixStats::top) holds the channel
  float max_value = 0.0f;  // its largest max|x| over those layers
  int max_layer = 0;
};

// For the residual-width points (attn_in, ffn_in, residual), whose channel j is
// the same model dimension in every layer: the k channels in the most per-layer
// top-k lists (ties: larger max_value first).
std::vector<RecurringChannel> recurring_channels(const ModelInspection& m, int point, int k);

struct PrecisionSuggestion {
  int layer = 0;
  int point = 0;
  double absmax = 0.0;
  double median_absmax = 0.0;  // median over layers of the point's absmax
  std::vector<std::string> linears;  // "layers.{i}.down_proj", ...
};

// Linear inputs whose absmax exceeds `factor` times the median absmax of the same
// point over all layers (the "spiking" layers of spike-aware mixed precision):
// their linears are the first to keep at higher precision. Ordered by layer.
std::vector<PrecisionSuggestion> suggest_mixed_precision(const ModelInspection& m, double factor = 10.0);

// A recipe rule regex matching exactly the suggested linears, e.g.
// "^layers\.(1)\.(q_proj|k_proj|v_proj)$|^layers\.(3|29)\.(down_proj)$"; "" for none.
std::string suggestion_regex(const std::vector<PrecisionSuggestion>& suggestions);

}  // namespace lowbit
