#include "pipeline/activation_capture.h"

#include <algorithm>

#include "pipeline/activation_stats.h"

namespace lowbit {

RowSampler::RowSampler(const std::vector<std::string>& names, int64_t stride, int64_t max_rows, int64_t first_token)
    : stride_(std::max<int64_t>(stride, 1)), max_rows_(max_rows), first_token_(first_token) {
  for (const std::string& name : names) rows_[shared_input_key(name)];
}

void RowSampler::observe(const std::string& linear_name, const float* x, int64_t n_tokens, int64_t in_features) {
  auto it = rows_.find(linear_name);  // leaders only: siblings see the same input
  if (it == rows_.end()) return;
  Rows& r = it->second;
  if (r.tokens_seen == 0) r.in_features = in_features;
  if (r.in_features != in_features) return;  // ActivationStats reports such inconsistencies
  for (int64_t t = 0; t < n_tokens; ++t, ++r.tokens_seen) {
    if ((first_token_ + r.tokens_seen) % stride_ != 0 || r.n_rows >= max_rows_) continue;
    r.data.insert(r.data.end(), x + t * in_features, x + (t + 1) * in_features);
    ++r.n_rows;
  }
}

Status RowSampler::gather(Communicator& comm) {
  if (comm.size() == 1) return Status::ok_status();
  for (auto& [key, r] : rows_) {
    int64_t width = r.in_features;
    LB_RETURN_IF_ERROR(comm.allreduce_sum(&r.tokens_seen, 1));
    LB_ASSIGN_OR_RETURN(std::vector<float> all, comm.allgather(r.data));
    // A rank that saw no rows has in_features 0: every rank takes the widest.
    std::vector<float> w = {static_cast<float>(width)};
    LB_RETURN_IF_ERROR(comm.allreduce_max(w.data(), 1));
    width = static_cast<int64_t>(w[0]);
    if (width == 0) continue;
    r.in_features = width;
    r.n_rows = std::min<int64_t>(static_cast<int64_t>(all.size()) / width, max_rows_);
    all.resize(static_cast<size_t>(r.n_rows * width));
    r.data = std::move(all);
  }
  return Status::ok_status();
}

const RowSampler::Rows* RowSampler::find(const std::string& linear_name) const {
  auto it = rows_.find(shared_input_key(linear_name));
  return it == rows_.end() || it->second.n_rows == 0 ? nullptr : &it->second;
}

}  // namespace lowbit
