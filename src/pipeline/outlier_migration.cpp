#include "pipeline/outlier_migration.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "pipeline/activation_stats.h"

namespace lowbit {
namespace {

constexpr float kMinScale = 1e-5f;
constexpr float kMaxScale = 1e5f;

// max_i |W_ij| over the rows of every linear: [in].
std::vector<float> weight_column_abs_max(const std::vector<MigrationLinear>& linears, int64_t in) {
  std::vector<float> m(static_cast<size_t>(in), 0.0f);
  for (const MigrationLinear& l : linears) {
    const Matrix& w = *l.weight;
    for (int64_t r = 0; r < w.rows; ++r) {
      const float* row = w.data.data() + r * w.cols;
      for (int64_t j = 0; j < in; ++j) m[j] = std::max(m[j], std::fabs(row[j]));
    }
  }
  return m;
}

}  // namespace

ChannelRange::ChannelRange(const std::vector<std::string>& names) {
  for (const std::string& name : names) ranges_[shared_input_key(name)];
}

void ChannelRange::observe(const std::string& linear_name, const float* x, int64_t n_tokens, int64_t in) {
  auto it = ranges_.find(linear_name);  // leaders only: siblings see the same input
  if (it == ranges_.end() || n_tokens <= 0) return;
  Range& r = it->second;
  if (r.n_tokens == 0) {
    r.min.assign(static_cast<size_t>(in), std::numeric_limits<float>::infinity());
    r.max.assign(static_cast<size_t>(in), -std::numeric_limits<float>::infinity());
  }
  if (static_cast<int64_t>(r.min.size()) != in) return;  // ActivationStats reports such inconsistencies
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* row = x + t * in;
    for (int64_t j = 0; j < in; ++j) {
      r.min[j] = std::min(r.min[j], row[j]);
      r.max[j] = std::max(r.max[j], row[j]);
    }
  }
  r.n_tokens += n_tokens;
}

Status ChannelRange::reduce(Communicator& comm) {
  if (comm.size() == 1) return Status::ok_status();
  for (auto& [key, r] : ranges_) {
    LB_RETURN_IF_ERROR(comm.allreduce_sum(&r.n_tokens, 1));
    const int64_t in = static_cast<int64_t>(r.max.size());
    LB_RETURN_IF_ERROR(comm.allreduce_max(r.max.data(), in));
    for (float& v : r.min) v = -v;  // min = -max(-x), exactly
    LB_RETURN_IF_ERROR(comm.allreduce_max(r.min.data(), in));
    for (float& v : r.min) v = -v;
  }
  return Status::ok_status();
}

const ChannelRange::Range* ChannelRange::find(const std::string& linear_name) const {
  auto it = ranges_.find(shared_input_key(linear_name));
  return it == ranges_.end() || it->second.n_tokens == 0 ? nullptr : &it->second;
}

Expected<double> migration_error(const std::vector<MigrationLinear>& linears, const float* x, int64_t rows,
                                 int64_t in, const std::vector<float>& shift, const std::vector<float>& scale,
                                 ThreadPool& pool) {
  if (static_cast<int64_t>(scale.size()) != in || (!shift.empty() && static_cast<int64_t>(shift.size()) != in)) {
    return make_error("migration error: {} scales / {} shifts for {} channels", scale.size(), shift.size(), in);
  }
  const size_t n = static_cast<size_t>(rows * in);
  std::vector<float> centred(x, x + n);  // [rows, in] X − z
  if (!shift.empty()) {
    for (int64_t t = 0; t < rows; ++t) {
      for (int64_t j = 0; j < in; ++j) centred[t * in + j] -= shift[j];
    }
  }
  std::vector<float> scaled(n);  // [rows, in] (X − z) / s
  float scaled_max = 0.0f;
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t j = 0; j < in; ++j) {
      scaled[t * in + j] = centred[t * in + j] / scale[j];
      scaled_max = std::max(scaled_max, std::fabs(scaled[t * in + j]));
    }
  }
  double err = 0.0, ref = 0.0;
  std::vector<float> xq(n), wq, y_ref, y;
  for (const MigrationLinear& l : linears) {
    const Matrix& w = *l.weight;
    const int64_t out = w.rows;
    // Q_w(W diag(s)): [out, in]
    wq.resize(static_cast<size_t>(out * in));
    for (int64_t r = 0; r < out; ++r) {
      for (int64_t j = 0; j < in; ++j) wq[r * in + j] = w.data[r * in + j] * scale[j];
    }
    if (l.weight_format != nullptr) {
      LB_ASSIGN_OR_RETURN(QuantizedTensor q, l.weight_format->quantize(wq.data(), out, in));
      LB_RETURN_IF_ERROR(l.weight_format->dequantize(q, wq.data()));
    }
    // Q_a((X − z) / s): [rows, in]
    if (l.act) {
      LB_ASSIGN_OR_RETURN(ActQuantizer aq, ActQuantizer::create(*l.act));
      const float t = scaled_max > 0.0f ? l.act->clip * scaled_max : 1.0f;
      LB_RETURN_IF_ERROR(aq.apply(scaled.data(), rows, in, xq.data(), t, &pool));
    } else {
      xq = scaled;
    }
    y_ref.resize(static_cast<size_t>(rows * out));  // [rows, out] (X − z) Wᵀ
    y.resize(y_ref.size());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(out),
                static_cast<int>(in), 1.0f, centred.data(), static_cast<int>(in), w.data.data(), static_cast<int>(in),
                0.0f, y_ref.data(), static_cast<int>(out));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(out),
                static_cast<int>(in), 1.0f, xq.data(), static_cast<int>(in), wq.data(), static_cast<int>(in), 0.0f,
                y.data(), static_cast<int>(out));
    // The shift comes back through the bias W z: the reference output is X Wᵀ = (X − z) Wᵀ + W z.
    std::vector<double> wz(static_cast<size_t>(out), 0.0);
    if (!shift.empty()) {
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t j = 0; j < in; ++j) wz[o] += static_cast<double>(w.data[o * in + j]) * shift[j];
      }
    }
    for (int64_t t = 0; t < rows; ++t) {
      for (int64_t o = 0; o < out; ++o) {
        const size_t i = static_cast<size_t>(t * out + o);
        const double d = static_cast<double>(y_ref[i]) - y[i];
        const double full = y_ref[i] + wz[o];
        err += d * d;
        ref += full * full;
      }
    }
  }
  return ref > 0.0 ? err / ref : 0.0;
}

std::vector<float> smoothquant_scales(const std::vector<float>& x_abs_max, const std::vector<MigrationLinear>& linears,
                                      float alpha) {
  const int64_t in = static_cast<int64_t>(x_abs_max.size());
  const std::vector<float> w_max = weight_column_abs_max(linears, in);
  std::vector<float> s(static_cast<size_t>(in), 1.0f);
  for (int64_t j = 0; j < in; ++j) {
    if (!(x_abs_max[j] > 0.0f) || !(w_max[j] > 0.0f)) continue;
    const double v = std::pow(static_cast<double>(x_abs_max[j]), alpha) / std::pow(static_cast<double>(w_max[j]), 1.0 - alpha);
    s[j] = std::clamp(static_cast<float>(v), kMinScale, kMaxScale);
  }
  return s;
}

Expected<MigrationResult> search_smoothquant_alpha(const std::vector<MigrationLinear>& linears,
                                                   const std::vector<float>& x_abs_max, const float* x, int64_t rows,
                                                   int64_t in, int grid, ThreadPool& pool) {
  if (grid < 1) return make_error("SmoothQuant search: grid {} must be at least 1", grid);
  MigrationResult best;
  LB_ASSIGN_OR_RETURN(best.error_plain,
                      migration_error(linears, x, rows, in, {}, std::vector<float>(static_cast<size_t>(in), 1.0f), pool));
  best.error = std::numeric_limits<double>::infinity();
  for (int k = 0; k <= grid; ++k) {
    const float alpha = static_cast<float>(k) / static_cast<float>(grid);
    std::vector<float> s = smoothquant_scales(x_abs_max, linears, alpha);
    LB_ASSIGN_OR_RETURN(double e, migration_error(linears, x, rows, in, {}, s, pool));
    if (e < best.error) {
      best.error = e;
      best.parameter = alpha;
      best.scale = std::move(s);
    }
  }
  return best;
}

Expected<MigrationResult> search_outlier_suppression(const std::vector<MigrationLinear>& linears,
                                                     const ChannelRange::Range& range, const float* x, int64_t rows,
                                                     int64_t in, int grid, ThreadPool& pool) {
  if (grid < 1) return make_error("OS+ search: grid {} must be at least 1", grid);
  if (static_cast<int64_t>(range.min.size()) != in) return make_error("OS+ search: range of {} channels", range.min.size());
  MigrationResult best;
  best.shift.resize(static_cast<size_t>(in));
  std::vector<float> half_range(static_cast<size_t>(in));  // max|X_j − z_j|
  float r_max = 0.0f;
  for (int64_t j = 0; j < in; ++j) {
    best.shift[j] = 0.5f * (range.max[j] + range.min[j]);
    half_range[j] = 0.5f * (range.max[j] - range.min[j]);
    r_max = std::max(r_max, half_range[j]);
  }
  const std::vector<float> ones(static_cast<size_t>(in), 1.0f);
  LB_ASSIGN_OR_RETURN(best.error_plain, migration_error(linears, x, rows, in, {}, ones, pool));
  best.error = std::numeric_limits<double>::infinity();
  best.scale = ones;
  best.parameter = r_max;
  if (!(r_max > 0.0f)) {
    LB_ASSIGN_OR_RETURN(best.error, migration_error(linears, x, rows, in, best.shift, ones, pool));
    return best;
  }
  for (int k = grid; k >= 1; --k) {
    const float t = r_max * static_cast<float>(k) / static_cast<float>(grid);
    std::vector<float> s(static_cast<size_t>(in));
    for (int64_t j = 0; j < in; ++j) s[j] = std::clamp(half_range[j] / t, 1.0f, kMaxScale);
    LB_ASSIGN_OR_RETURN(double e, migration_error(linears, x, rows, in, best.shift, s, pool));
    if (e < best.error) {
      best.error = e;
      best.parameter = t;
      best.scale = std::move(s);
    }
  }
  return best;
}

ChannelRange::Range gqa_union_range(const ChannelRange::Range& range, const ModelConfig& c) {
  ChannelRange::Range out = range;
  const int group = c.n_heads / c.n_kv_heads, hd = c.head_dim;
  for (int g = 0; g < c.n_kv_heads; ++g) {
    for (int d = 0; d < hd; ++d) {
      float lo = std::numeric_limits<float>::infinity(), hi = -std::numeric_limits<float>::infinity();
      for (int h = g * group; h < (g + 1) * group; ++h) {
        lo = std::min(lo, range.min[static_cast<size_t>(h * hd + d)]);
        hi = std::max(hi, range.max[static_cast<size_t>(h * hd + d)]);
      }
      for (int h = g * group; h < (g + 1) * group; ++h) {
        out.min[static_cast<size_t>(h * hd + d)] = lo;
        out.max[static_cast<size_t>(h * hd + d)] = hi;
      }
    }
  }
  return out;
}

namespace {

// bias [rows] += W z (created when absent); W [rows, cols], z [cols]; the dot in double.
void add_weight_times(Matrix& m, const std::vector<float>& z) {
  if (m.bias.empty()) m.bias.assign(static_cast<size_t>(m.rows), 0.0f);
  for (int64_t r = 0; r < m.rows; ++r) {
    const float* row = m.data.data() + r * m.cols;
    double dot = 0.0;
    for (int64_t j = 0; j < m.cols; ++j) dot += static_cast<double>(row[j]) * z[j];
    m.bias[r] += static_cast<float>(dot);
  }
}

// o_proj's input shift through v_proj's bias: z [q_dim] equal across each KV group's heads.
Status fold_output_shift(LayerWeights& w, const ModelConfig& c, int layer, const std::vector<float>& z) {
  if (static_cast<int64_t>(z.size()) != c.q_dim()) {
    return make_error("layers.{}: {} shifts for the {} o_proj input channels", layer, z.size(), c.q_dim());
  }
  const int group = c.n_heads / c.n_kv_heads, hd = c.head_dim;
  std::vector<float> z_kv(static_cast<size_t>(c.kv_dim()));
  for (int h = 0; h < c.n_heads; ++h) {
    for (int d = 0; d < hd; ++d) {
      const float v = z[static_cast<size_t>(h * hd + d)];
      const size_t kv = static_cast<size_t>((h / group) * hd + d);
      if (h % group == 0) {
        z_kv[kv] = v;
      } else if (v != z_kv[kv]) {
        return make_error("layers.{}: o_proj input shift of channel {} is {}, but head {} of its KV group has {}: the "
                          "heads of a KV group read the same values, so their shifts must be equal",
                          layer, h * hd + d, v, (h / group) * group, z_kv[kv]);
      }
    }
  }
  if (w.v_proj.bias.empty()) w.v_proj.bias.assign(static_cast<size_t>(w.v_proj.rows), 0.0f);
  for (size_t j = 0; j < z_kv.size(); ++j) w.v_proj.bias[j] -= z_kv[j];
  add_weight_times(w.o_proj, z);
  return Status::ok_status();
}

}  // namespace

Status fold_channel_shift(LayerWeights& w, const ModelConfig& c, int layer, AwqGroup group,
                          const std::vector<float>& z) {
  if (group == AwqGroup::kDown) {
    return make_error("layers.{}: a channel shift folds into q/k/v, o or gate/up, not {}", layer, awq_group_name(group));
  }
  for (size_t j = 0; j < z.size(); ++j) {
    if (!std::isfinite(z[j])) return make_error("layers.{}: shift of channel {} is {}", layer, j, z[j]);
  }
  if (group == AwqGroup::kOut) return fold_output_shift(w, c, layer, z);
  if (static_cast<int64_t>(z.size()) != c.dim) {
    return make_error("layers.{}: {} shifts for {} channels", layer, z.size(), c.dim);
  }
  std::vector<float>& norm_bias = group == AwqGroup::kQkv ? w.attn_norm_bias : w.ffn_norm_bias;
  if (norm_bias.empty()) norm_bias.assign(static_cast<size_t>(c.dim), 0.0f);
  for (size_t j = 0; j < z.size(); ++j) norm_bias[j] -= z[j];
  std::vector<Matrix*> linears = group == AwqGroup::kQkv ? std::vector<Matrix*>{&w.q_proj, &w.k_proj, &w.v_proj}
                                                         : std::vector<Matrix*>{&w.gate_proj, &w.up_proj};
  for (Matrix* m : linears) add_weight_times(*m, z);
  return Status::ok_status();
}

}  // namespace lowbit
