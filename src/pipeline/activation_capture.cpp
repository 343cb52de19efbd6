#include "pipeline/activation_capture.h"

#include <algorithm>

#include "pipeline/activation_stats.h"

namespace lowbit {

RowSampler::RowSampler(const std::vector<std::string>& names, int64_t stride, int64_t max_rows)
    : stride_(std::max<int64_t>(stride, 1)), max_rows_(max_rows) {
  for (const std::string& name : names) rows_[shared_input_key(name)];
}

void RowSampler::observe(const std::string& linear_name, const float* x, int64_t n_tokens, int64_t in_features) {
  auto it = rows_.find(linear_name);  // leaders only: siblings see the same input
  if (it == rows_.end()) return;
  Rows& r = it->second;
  if (r.tokens_seen == 0) r.in_features = in_features;
  if (r.in_features != in_features) return;  // ActivationStats reports such inconsistencies
  for (int64_t t = 0; t < n_tokens; ++t, ++r.tokens_seen) {
    if (r.tokens_seen % stride_ != 0 || r.n_rows >= max_rows_) continue;
    r.data.insert(r.data.end(), x + t * in_features, x + (t + 1) * in_features);
    ++r.n_rows;
  }
}

const RowSampler::Rows* RowSampler::find(const std::string& linear_name) const {
  auto it = rows_.find(shared_input_key(linear_name));
  return it == rows_.end() || it->second.n_rows == 0 ? nullptr : &it->second;
}

}  // namespace lowbit
