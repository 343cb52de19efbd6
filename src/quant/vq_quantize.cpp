// Residual vector quantization of matrices (vq_quantize.h).
#include "quant/vq_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "core/splitmix64.h"
#include "core/thread_pool.h"
#include "quant/vq_kmeans.h"

namespace lowbit {
namespace {

bool fp16_is_inf_or_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u; }

// Runs fn(row) for every row, on pool's threads when given; the first error (lowest thread) is returned.
template <typename Fn>
Status for_rows(int64_t rows, ThreadPool* pool, Fn fn) {
  const int threads = pool != nullptr ? pool->size() : 1;
  std::vector<Status> status(static_cast<size_t>(threads));
  auto body = [&](int64_t begin, int64_t end, int thread) {
    for (int64_t r = begin; r < end; ++r) {
      Status s = fn(r);
      if (!s.ok()) {
        status[thread] = s;
        return;
      }
    }
  };
  if (pool != nullptr && rows > 1) {
    pool->parallel_for(rows, body);
  } else {
    body(0, rows, 0);
  }
  for (Status& s : status) LB_RETURN_IF_ERROR(s);
  return Status::ok_status();
}

Status check_inputs(const VqParams& p, const float* x, int64_t rows, int64_t cols, std::span<const float> importance) {
  const std::string name = vq_format_name(p);
  LB_RETURN_IF_ERROR(vq_check_shape(p, rows, cols));
  if (!importance.empty() && static_cast<int64_t>(importance.size()) != cols) {
    return make_error("{}: importance has {} values for {} columns", name, importance.size(), cols);
  }
  for (size_t j = 0; j < importance.size(); ++j) {
    if (!(importance[j] >= 0.0f) || !std::isfinite(importance[j])) {
      return make_error("{}: importance[{}] = {} is not finite and >= 0", name, j, importance[j]);
    }
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(x[i])) return make_error("{}: weight [{}, {}] = {} is not finite", name, i / cols, i % cols, x[i]);
  }
  return Status::ok_status();
}

// Σ w x² and Σ w of a group; w is cleared when it has no weight anywhere (every column counts alike).
struct GroupEnergy {
  const float* w;
  double energy = 0.0, wsum = 0.0;
};
GroupEnergy group_energy(const float* x, const float* w, int64_t n) {
  GroupEnergy e{w};
  for (int64_t i = 0; i < n; ++i) {
    const double wi = w != nullptr ? w[i] : 1.0;
    e.energy += wi * static_cast<double>(x[i]) * x[i];
    e.wsum += wi;
  }
  if (e.wsum <= 0.0) {
    e = GroupEnergy{nullptr};
    for (int64_t i = 0; i < n; ++i) e.energy += static_cast<double>(x[i]) * x[i];
    e.wsum = static_cast<double>(n);
  }
  return e;
}

// Step 1: the weighted RMS as an FP16 scale (0 for an all-zero group); an error over FP16's range.
Expected<uint16_t> start_scale(const VqParams& p, const GroupEnergy& e) {
  if (!(e.energy > 0.0)) return uint16_t{0};
  const double rms = std::sqrt(e.energy / e.wsum);
  const uint16_t h = float_to_fp16(static_cast<float>(rms));
  if (fp16_is_inf_or_nan(h)) {
    return make_error("{}: group scale {} exceeds FP16 (max |weight| too large)", vq_format_name(p), rms);
  }
  return h;
}

std::vector<uint8_t> codebook_bytes(const std::vector<float>& codebooks) {
  std::vector<uint8_t> bytes(codebooks.size() * 2);
  for (size_t i = 0; i < codebooks.size(); ++i) {
    const uint16_t h = float_to_fp16(codebooks[i]);
    bytes[2 * i] = static_cast<uint8_t>(h & 0xffu);
    bytes[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
  return bytes;
}

std::vector<uint8_t> scale_bytes(const std::vector<uint16_t>& scales) {
  std::vector<uint8_t> bytes(scales.size() * 2);
  for (size_t i = 0; i < scales.size(); ++i) {
    bytes[2 * i] = static_cast<uint8_t>(scales[i] & 0xffu);
    bytes[2 * i + 1] = static_cast<uint8_t>(scales[i] >> 8);
  }
  return bytes;
}

// Draws m of 0 .. n-1 without replacement (a partial Fisher-Yates shuffle by
// splitmix64), returned in increasing order.
std::vector<int64_t> sample_indices(int64_t n, int64_t m, uint64_t seed) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[i] = i;
  SplitMix64 rng{seed};
  for (int64_t i = 0; i < m; ++i) {
    const int64_t j = i + static_cast<int64_t>(rng.next() % static_cast<uint64_t>(n - i));
    std::swap(idx[i], idx[j]);
  }
  idx.resize(static_cast<size_t>(m));
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace

Expected<std::vector<float>> vq_train_codebooks(const VqParams& p, const float* x, int64_t rows, int64_t cols,
                                                std::span<const float> importance, ThreadPool* pool) {
  LB_RETURN_IF_ERROR(check_inputs(p, x, rows, cols, importance));
  const int64_t groups = vq_row_groups(p, cols), row_vectors = cols / kVqDim;
  std::vector<float> scale(static_cast<size_t>(rows * groups));  // [rows, groups] start scales
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = g * p.group, len = std::min<int64_t>(p.group, cols - c0);
      const GroupEnergy e = group_energy(x + r * cols + c0, importance.empty() ? nullptr : importance.data() + c0, len);
      LB_ASSIGN_OR_RETURN(uint16_t h, start_scale(p, e));
      scale[r * groups + g] = fp16_to_float(h);
    }
  }
  std::vector<int64_t> candidates;  // vectors r * row_vectors + v of nonzero groups
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t v = 0; v < row_vectors; ++v) {
      if (scale[r * groups + v * kVqDim / p.group] > 0.0f) candidates.push_back(r * row_vectors + v);
    }
  }
  std::vector<float> codebooks(static_cast<size_t>(p.stages) * kVqCentroids * kVqDim, 0.0f);  // [S, 256, 8]
  if (candidates.empty()) return codebooks;  // all zero: every scale is 0, the codebooks are never read
  const int64_t m = std::min<int64_t>(kVqTrainVectors, static_cast<int64_t>(candidates.size()));
  if (m < static_cast<int64_t>(candidates.size())) {
    std::vector<int64_t> chosen;
    for (int64_t i : sample_indices(static_cast<int64_t>(candidates.size()), m, kVqSeed)) chosen.push_back(candidates[i]);
    candidates = std::move(chosen);
  }
  double mean_importance = 0.0;
  for (float w : importance) mean_importance += w;
  mean_importance /= std::max<double>(1.0, static_cast<double>(importance.size()));
  std::vector<float> residual(static_cast<size_t>(m * kVqDim)), weight(residual.size());  // [m, 8]
  double weight_sum = 0.0;
  for (int64_t i = 0; i < m; ++i) {
    const int64_t r = candidates[i] / row_vectors, c0 = candidates[i] % row_vectors * kVqDim;
    const float s = scale[r * groups + c0 / p.group];
    for (int j = 0; j < kVqDim; ++j) {
      residual[i * kVqDim + j] = x[r * cols + c0 + j] / s;
      const double w = importance.empty() || !(mean_importance > 0.0) ? 1.0 : importance[c0 + j] / mean_importance;
      weight[i * kVqDim + j] = static_cast<float>(w * s * s);
      weight_sum += weight[i * kVqDim + j];
    }
  }
  const bool weighted = weight_sum > 0.0;  // all weight zero (importance zero where weights are): unweighted
  if (weighted) {
    const double norm = static_cast<double>(m * kVqDim) / weight_sum;
    for (float& w : weight) w = static_cast<float>(w * norm);
  }
  for (int t = 0; t < p.stages; ++t) {
    KmeansOptions o;
    o.centroids = kVqCentroids;
    o.iterations = kVqLloydIterations;
    o.seed = kVqSeed + static_cast<uint64_t>(t);
    o.pool = pool;
    LB_ASSIGN_OR_RETURN(KmeansResult km, weighted_kmeans(residual.data(), weighted ? weight.data() : nullptr, m,
                                                         kVqDim, o));
    float* stage = codebooks.data() + static_cast<int64_t>(t) * kVqCentroids * kVqDim;
    for (int i = 0; i < kVqCentroids * kVqDim; ++i) {
      const uint16_t h = float_to_fp16(km.centroids[i]);
      if (fp16_is_inf_or_nan(h)) {
        return make_error("{}: stage {} centroid value {} exceeds FP16", vq_format_name(p), t, km.centroids[i]);
      }
      stage[i] = fp16_to_float(h);
    }
    for (int64_t i = 0; i < m; ++i) {
      for (int j = 0; j < kVqDim; ++j) residual[i * kVqDim + j] -= stage[km.assign[i] * kVqDim + j];
    }
  }
  return codebooks;
}

VqCodebooks VqCodebooks::from_values(std::vector<float> values) {
  VqCodebooks c;
  const int64_t stage_size = static_cast<int64_t>(kVqCentroids) * kVqDim;
  c.transposed.resize(values.size());
  for (size_t s = 0; s * stage_size < values.size(); ++s) {
    const std::vector<float> t = transpose_centroids(values.data() + s * stage_size, kVqCentroids, kVqDim);
    std::copy(t.begin(), t.end(), c.transposed.begin() + static_cast<int64_t>(s) * stage_size);
  }
  c.values = std::move(values);
  return c;
}

void vq_encode_vector(const VqParams& p, const VqCodebooks& codebooks, const float* y, const float* w, uint8_t* codes) {
  const int64_t stage_size = static_cast<int64_t>(kVqCentroids) * kVqDim;
  float r[kVqDim];  // the target less every stage's centroid but the one being chosen
  std::copy_n(y, kVqDim, r);
  auto choose = [&](int s) {
    const float* stage = codebooks.values.data() + s * stage_size;
    codes[s] = static_cast<uint8_t>(
        nearest_centroid(codebooks.transposed.data() + s * stage_size, kVqCentroids, kVqDim, r, w, nullptr));
    for (int j = 0; j < kVqDim; ++j) r[j] -= stage[codes[s] * kVqDim + j];
  };
  for (int s = 0; s < p.stages; ++s) choose(s);
  if (p.stages == 1) return;
  for (int s = 0; s < p.stages; ++s) {  // re-choose stage s given the others (the current one is a candidate)
    const float* c = codebooks.values.data() + s * stage_size + codes[s] * kVqDim;
    for (int j = 0; j < kVqDim; ++j) r[j] += c[j];
    choose(s);
  }
}

Expected<VqGroupCode> vq_encode_group(const VqParams& p, const VqCodebooks& codebooks, const float* x, const float* w,
                                      int64_t n, uint8_t* codes, const uint16_t* fixed_scale) {
  if (n < kVqDim || n % kVqDim != 0) {
    return make_error("{} group: {} values are not whole vectors of {}", vq_format_name(p), n, kVqDim);
  }
  const int64_t n_vec = n / kVqDim;
  const GroupEnergy e = group_energy(x, w, n);
  w = e.w;
  VqGroupCode best;
  best.error = e.energy;
  std::memset(codes, 0, static_cast<size_t>(n_vec * p.stages));
  uint16_t h = 0;
  if (fixed_scale != nullptr) {
    h = *fixed_scale;
    if (fp16_is_inf_or_nan(h)) return make_error("{}: fixed scale 0x{:04x} is not finite", vq_format_name(p), h);
  } else {
    LB_ASSIGN_OR_RETURN(h, start_scale(p, e));
  }
  std::vector<uint8_t> trial(static_cast<size_t>(n_vec * p.stages));
  float y[kVqDim], v[kVqDim], q[kVqDim];
  for (int round = 0; round <= 1; ++round) {
    const float s = fp16_to_float(h);
    if (!(s > 0.0f)) break;  // zero (or underflowed) scale: zero codes, the error is Σ w x²
    double err = 0.0, num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n_vec; ++i) {
      const float* xs = x + i * kVqDim;
      const float* ws = w != nullptr ? w + i * kVqDim : nullptr;
      uint8_t* c = trial.data() + i * p.stages;
      for (int j = 0; j < kVqDim; ++j) y[j] = xs[j] / s;
      vq_encode_vector(p, codebooks, y, ws, c);
      vq_decode_vector(p, codebooks.values.data(), c, 1.0f, v);  // the centroid sum
      vq_decode_vector(p, codebooks.values.data(), c, s, q);     // the stored value
      for (int j = 0; j < kVqDim; ++j) {
        const double wj = ws != nullptr ? ws[j] : 1.0;
        const double d = static_cast<double>(xs[j]) - q[j];
        err += wj * d * d;
        num += wj * static_cast<double>(xs[j]) * v[j];
        den += wj * static_cast<double>(v[j]) * v[j];
      }
    }
    if (err < best.error || round == 0) {
      best.error = err;
      best.scale = h;
      std::copy(trial.begin(), trial.end(), codes);
    }
    if (fixed_scale != nullptr || !(num > 0.0 && den > 0.0)) break;
    const uint16_t next = float_to_fp16(static_cast<float>(num / den));
    if (next == h || fp16_is_inf_or_nan(next) || fp16_to_float(next) == 0.0f) break;
    h = next;
  }
  return best;
}

Expected<QuantizedTensor> vq_quantize(const VqParams& p, const float* x, int64_t rows, int64_t cols,
                                      std::span<const float> importance, ThreadPool* pool) {
  LB_ASSIGN_OR_RETURN(std::vector<float> values, vq_train_codebooks(p, x, rows, cols, importance, pool));
  const VqCodebooks codebooks = VqCodebooks::from_values(std::move(values));
  const int64_t row_bytes = vq_row_bytes(p, cols), groups = vq_row_groups(p, cols);
  QuantizedTensor t;
  t.rows = rows;
  t.cols = cols;
  t.codes.resize(static_cast<size_t>(rows * row_bytes));
  std::vector<uint16_t> scales(static_cast<size_t>(rows * groups));  // [rows, groups]
  LB_RETURN_IF_ERROR(for_rows(rows, pool, [&](int64_t r) -> Status {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = g * p.group, len = std::min<int64_t>(p.group, cols - c0);
      const float* w = importance.empty() ? nullptr : importance.data() + c0;
      uint8_t* codes = t.codes.data() + r * row_bytes + c0 / kVqDim * p.stages;
      LB_ASSIGN_OR_RETURN(VqGroupCode code, vq_encode_group(p, codebooks, x + r * cols + c0, w, len, codes));
      scales[r * groups + g] = code.scale;
    }
    return Status::ok_status();
  }));
  t.scales = scale_bytes(scales);
  t.mins = codebook_bytes(codebooks.values);
  return t;
}

Status vq_dequantize(const VqParams& p, const QuantizedTensor& t, float* out) {
  const std::string name = vq_format_name(p);
  LB_RETURN_IF_ERROR(vq_check_shape(p, t.rows, t.cols));
  const int64_t row_bytes = vq_row_bytes(p, t.cols), groups = vq_row_groups(p, t.cols);
  if (t.codes.size() != static_cast<size_t>(t.rows * row_bytes) ||
      t.scales.size() != static_cast<size_t>(t.rows * groups * 2) ||
      t.mins.size() != static_cast<size_t>(p.codebook_bytes())) {
    return make_error("{}: stored sizes (codes {}, scales {}, codebooks {}) do not match [{}, {}] ({}, {}, {})", name,
                      t.codes.size(), t.scales.size(), t.mins.size(), t.rows, t.cols, t.rows * row_bytes,
                      t.rows * groups * 2, p.codebook_bytes());
  }
  std::vector<float> codebooks(t.mins.size() / 2);  // [S, 256, 8]
  for (size_t i = 0; i < codebooks.size(); ++i) {
    const uint16_t h = static_cast<uint16_t>(t.mins[2 * i] | (t.mins[2 * i + 1] << 8));
    if (fp16_is_inf_or_nan(h)) return make_error("{}: codebook value {} (0x{:04x}) is not finite", name, i, h);
    codebooks[i] = fp16_to_float(h);
  }
  std::vector<uint16_t> scales(static_cast<size_t>(groups));  // [groups] of one row
  for (int64_t r = 0; r < t.rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const size_t at = static_cast<size_t>((r * groups + g) * 2);
      scales[g] = static_cast<uint16_t>(t.scales[at] | (t.scales[at + 1] << 8));
      if (fp16_is_inf_or_nan(scales[g])) {
        return make_error("{}: scale of row {} group {} (0x{:04x}) is not finite", name, r, g, scales[g]);
      }
    }
    vq_decode_row(p, codebooks.data(), t.codes.data() + r * row_bytes, scales.data(), t.cols, out + r * t.cols);
  }
  return Status::ok_status();
}

namespace {

class VqColumnScales final : public ColumnScales {
 public:
  VqColumnScales(const VqParams& p, int64_t rows, int64_t cols, ThreadPool* pool, VqCodebooks codebooks)
      : p_(p),
        rows_(rows),
        cols_(cols),
        pool_(pool),
        groups_(vq_row_groups(p, cols)),
        row_bytes_(vq_row_bytes(p, cols)),
        codebooks_(std::move(codebooks)),
        scales_(static_cast<size_t>(rows * groups_)),
        codes_(static_cast<size_t>(rows * row_bytes_)),
        importance_(static_cast<size_t>(cols), 1.0f) {}

  int64_t group_cols() const override { return p_.group; }
  int64_t joint_cols() const override { return kVqDim; }

  Status choose(const float* x, int64_t c0, int64_t n, std::span<const float> importance) override {
    LB_RETURN_IF_ERROR(check_whole_groups(vq_format_name(p_), p_.group, cols_, c0, n, importance));
    if (!importance.empty()) std::copy(importance.begin(), importance.end(), importance_.begin() + c0);
    const bool weighted = !importance.empty();
    for (int64_t g0 = c0; g0 < c0 + n; g0 += p_.group) {
      const int64_t g = g0 / p_.group, len = std::min<int64_t>(p_.group, cols_ - g0);
      LB_RETURN_IF_ERROR(for_rows(rows_, pool_, [&](int64_t r) -> Status {
        const float* w = weighted ? importance_.data() + g0 : nullptr;
        LB_ASSIGN_OR_RETURN(VqGroupCode code,
                            vq_encode_group(p_, codebooks_, x + r * n + (g0 - c0), w, len, codes_at(r, g0)));
        scales_[r * groups_ + g] = code.scale;
        return Status::ok_status();
      }));
    }
    weighted_ = weighted_ || weighted;
    return Status::ok_status();
  }

  void quantize_column(int64_t c, const float* x, float* q) override {
    misuse_ = make_error("{}: column {} quantized alone; VQ codes take {} columns jointly (quantize_block)",
                         vq_format_name(p_), c, kVqDim);
    std::copy_n(x, rows_, q);
  }

  Status quantize_block(int64_t c0, const float* x, float* q) override {
    if (c0 % kVqDim != 0 || c0 < 0 || c0 + kVqDim > cols_) {
      return make_error("{}: block at column {} is not a whole vector of {}", vq_format_name(p_), c0, kVqDim);
    }
    const int64_t g = c0 / p_.group;
    return for_rows(rows_, pool_, [&](int64_t r) -> Status {
      const float* w = weighted_ ? importance_.data() + c0 : nullptr;
      uint8_t* codes = codes_at(r, c0);
      LB_RETURN_IF_ERROR(
          vq_encode_group(p_, codebooks_, x + r * kVqDim, w, kVqDim, codes, &scales_[r * groups_ + g]).status());
      vq_decode_vector(p_, codebooks_.values.data(), codes, fp16_to_float(scales_[r * groups_ + g]), q + r * kVqDim);
      return Status::ok_status();
    });
  }

  Expected<QuantizedTensor> pack() const override {
    LB_RETURN_IF_ERROR(misuse_);
    QuantizedTensor t;
    t.rows = rows_;
    t.cols = cols_;
    t.codes = codes_;
    t.scales = scale_bytes(scales_);
    t.mins = codebook_bytes(codebooks_.values);
    return t;
  }

 private:
  uint8_t* codes_at(int64_t r, int64_t c) { return codes_.data() + r * row_bytes_ + c / kVqDim * p_.stages; }

  VqParams p_;
  int64_t rows_, cols_;
  ThreadPool* pool_;
  int64_t groups_, row_bytes_;
  VqCodebooks codebooks_;          // exact in FP16
  std::vector<uint16_t> scales_;   // [rows, groups] FP16
  std::vector<uint8_t> codes_;     // [rows, row_bytes]
  std::vector<float> importance_;  // [cols]
  bool weighted_ = false;
  Status misuse_;
};

}  // namespace

Expected<std::unique_ptr<ColumnScales>> vq_column_scales(const VqParams& p, const float* w0, int64_t rows,
                                                         int64_t cols, std::span<const float> importance,
                                                         ThreadPool* pool) {
  if (w0 == nullptr) {
    return make_error("{}: the codebooks are trained from the weights before GPTQ's pass; none were given",
                      vq_format_name(p));
  }
  LB_ASSIGN_OR_RETURN(std::vector<float> values, vq_train_codebooks(p, w0, rows, cols, importance, pool));
  return std::unique_ptr<ColumnScales>(
      std::make_unique<VqColumnScales>(p, rows, cols, pool, VqCodebooks::from_values(std::move(values))));
}

}  // namespace lowbit
