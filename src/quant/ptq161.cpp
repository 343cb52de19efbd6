// The PTQ1.61 quantizer (ptq161.h).
#include "quant/ptq161.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/half.h"

namespace lowbit {
namespace {

constexpr int kMaxAlternations = 16;  // 4-bit (s, m) refits

float fp16_round(double v) { return fp16_to_float(float_to_fp16(static_cast<float>(v))); }

void put_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xFF);
  p[1] = static_cast<uint8_t>(v >> 8);
}

// sum_i d_i (w_i - r_i)^2 with r_i = scale * v_i + offset in FP32, as the decoder forms it.
double weighted_error(const float* w, const float* v, const float* d, int64_t n, float scale, float offset) {
  double e = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double diff = static_cast<double>(w[i]) - static_cast<double>(scale * v[i] + offset);
    e += (d != nullptr ? d[i] : 1.0) * diff * diff;
  }
  return e;
}

// The codes q in 0..15 nearest to (w - m) / s (s > 0), else 0.
void code4(const float* w, int64_t n, float s, float m, float* q) {
  for (int64_t i = 0; i < n; ++i) {
    q[i] = s > 0.0f ? std::clamp(std::nearbyint((w[i] - m) / s), 0.0f, 15.0f) : 0.0f;
  }
}

// Step 2 of ptq161.h on one row's salient values: (s, m) FP16-exact and the codes.
void quantize4(const float* w, const float* d, int64_t n, float& s_out, float& m_out, float* q) {
  if (n == 0) {
    s_out = m_out = 0.0f;
    return;
  }
  const auto [lo, hi] = std::minmax_element(w, w + n);
  float s = fp16_round((static_cast<double>(*hi) - *lo) / 15.0), m = fp16_round(*lo);
  code4(w, n, s, m, q);
  double best = weighted_error(w, q, d, n, s, m);
  s_out = s, m_out = m;
  std::vector<float> trial(static_cast<size_t>(n));
  for (int it = 0; it < kMaxAlternations; ++it) {
    const AffineFit f = weighted_affine_fit(w, q, d, n);
    if (!(f.scale > 0.0)) break;
    s = fp16_round(f.scale), m = fp16_round(f.offset);
    code4(w, n, s, m, trial.data());
    const double e = weighted_error(w, trial.data(), d, n, s, m);
    if (!(e < best)) break;
    best = e, s_out = s, m_out = m;
    std::copy(trial.begin(), trial.end(), q);
  }
}

}  // namespace

std::vector<int32_t> ptq161_select_salient(const Ptq161Params& p, const float* w, int64_t rows, int64_t cols,
                                           std::span<const float> importance) {
  std::vector<double> score(static_cast<size_t>(cols), 0.0);
  if (!importance.empty()) {
    for (int64_t c = 0; c < cols; ++c) score[c] = importance[c];
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) score[c] += static_cast<double>(w[r * cols + c]) * w[r * cols + c];
    }
  }
  std::vector<int32_t> order(static_cast<size_t>(cols));
  std::iota(order.begin(), order.end(), 0);
  const int64_t ns = p.salient_cols(cols);
  std::partial_sort(order.begin(), order.begin() + ns, order.end(), [&score](int32_t a, int32_t b) {
    return score[a] > score[b] || (score[a] == score[b] && a < b);
  });
  order.resize(static_cast<size_t>(ns));
  std::sort(order.begin(), order.end());
  return order;
}

AffineFit weighted_affine_fit(const float* x, const float* v, const float* d, int64_t n) {
  double sd = 0, sv = 0, sx = 0, svv = 0, svx = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double di = d != nullptr ? d[i] : 1.0, vi = v[i], xi = x[i];
    sd += di, sv += di * vi, sx += di * xi, svv += di * vi * vi, svx += di * vi * xi;
  }
  AffineFit f;
  if (!(sd > 0.0)) return f;
  const double det = sd * svv - sv * sv;
  // det = sum_i sum_k d_i d_k (v_i - v_k)^2 / 2 >= 0; relative to sd * svv it is 0 up to rounding when all v agree.
  if (det <= 1e-12 * sd * svv) {
    f.offset = sx / sd;
    return f;
  }
  f.scale = (sd * svx - sv * sx) / det;
  f.offset = (sx - f.scale * sv) / sd;
  return f;
}

Binarised ptq161_binarise(const float* w, const float* d, int64_t n, uint8_t* plus) {
  Binarised b;
  if (n == 0) return b;
  // Sorted by value, the minus set is a prefix: try every split k (k smallest values
  // minus), cost = sum_parts (sum d w^2 - (sum d w)^2 / sum d) from prefix sums.
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [w](int32_t a, int32_t c) { return w[a] < w[c] || (w[a] == w[c] && a < c); });
  double td = 0, tw = 0, tww = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double di = d != nullptr ? d[i] : 1.0;
    td += di, tw += di * w[i], tww += di * w[i] * w[i];
  }
  auto part_cost = [](double sd, double sw, double sww) { return sd > 0.0 ? sww - sw * sw / sd : sww; };
  double best = part_cost(td, tw, tww);  // k = 0: one level, alpha = 0, mu = the weighted mean
  int64_t best_k = 0;
  double ld = 0, lw = 0, lww = 0, best_ld = 0, best_lw = 0;
  for (int64_t k = 1; k < n; ++k) {
    const int32_t i = order[k - 1];
    const double di = d != nullptr ? d[i] : 1.0;
    ld += di, lw += di * w[i], lww += di * w[i] * w[i];
    if (w[order[k]] == w[i]) continue;  // equal values take the same sign
    const double cost = part_cost(ld, lw, lww) + part_cost(td - ld, tw - lw, tww - lww);
    if (cost < best && ld > 0.0 && td - ld > 0.0) best = cost, best_k = k, best_ld = ld, best_lw = lw;
  }
  for (int64_t k = 0; k < n; ++k) plus[order[k]] = k < best_k ? 0 : 1;
  if (best_k == 0) {
    b.mu = td > 0.0 ? tw / td : 0.0;
    return b;
  }
  const double lo = best_lw / best_ld, hi = (tw - best_lw) / (td - best_ld);
  b.alpha = 0.5 * (hi - lo);
  b.mu = 0.5 * (hi + lo);
  return b;
}

Expected<QuantizedTensor> ptq161_quantize(const Ptq161Params& p, const float* w, int64_t rows, int64_t cols,
                                          std::span<const float> importance) {
  LB_RETURN_IF_ERROR(ptq161_check_shape(p, rows, cols));
  const std::string name = ptq161_format_name(p);
  if (!importance.empty() && static_cast<int64_t>(importance.size()) != cols) {
    return make_error("{}: importance has {} values for {} columns", name, importance.size(), cols);
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) return make_error("{}: weight {} (row {}, column {}) is not finite", name, w[i], i / cols, i % cols);
  }
  const std::vector<int32_t> salient = ptq161_select_salient(p, w, rows, cols, importance);
  const int64_t ns = p.salient_cols(cols), nb = p.binary_cols(cols);
  std::vector<uint8_t> is_salient(static_cast<size_t>(cols), 0);
  for (int32_t c : salient) is_salient[c] = 1;
  std::vector<int32_t> binary;  // [nb] the other columns, ascending
  for (int64_t c = 0; c < cols; ++c) {
    if (!is_salient[c]) binary.push_back(static_cast<int32_t>(c));
  }
  // Weights d of each part, gathered: [ns], [nb].
  std::vector<float> ds(static_cast<size_t>(ns), 1.0f), db(static_cast<size_t>(nb), 1.0f);
  if (!importance.empty()) {
    for (int64_t j = 0; j < ns; ++j) ds[j] = std::max(0.0f, importance[salient[j]]);
    for (int64_t i = 0; i < nb; ++i) db[i] = std::max(0.0f, importance[binary[i]]);
  }
  auto usable = [](const float* d, int64_t n) {  // a part whose weights sum to 0 runs unweighted
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += d[i];
    return s > 0.0 ? d : nullptr;
  };

  QuantizedTensor t;
  t.rows = rows;
  t.cols = cols;
  const Ptq161Sizes sizes = ptq161_sizes(p, rows, cols);
  t.codes.assign(sizes.codes, 0);
  t.scales.assign(sizes.scales, 0);
  for (int32_t c : salient) t.codes[c / 8] |= static_cast<uint8_t>(1u << (c % 8));
  const float* dsal = usable(ds.data(), ns);
  std::vector<float> ws(static_cast<size_t>(ns)), q(static_cast<size_t>(ns)), wb(static_cast<size_t>(nb));
  std::vector<uint8_t> plus(static_cast<size_t>(nb));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    uint8_t* q4 = t.codes.data() + p.mask_bytes(cols) + r * p.row_code_bytes(cols);
    uint8_t* signs = q4 + (ns + 1) / 2;
    uint8_t* sc = t.scales.data() + r * p.row_scales(cols) * 2;
    for (int64_t j = 0; j < ns; ++j) ws[j] = row[salient[j]];
    float s = 0.0f, m = 0.0f;
    quantize4(ws.data(), dsal, ns, s, m, q.data());
    put_u16(sc, float_to_fp16(s));
    put_u16(sc + 2, float_to_fp16(m));
    for (int64_t j = 0; j < ns; ++j) q4[j / 2] |= static_cast<uint8_t>(static_cast<uint32_t>(q[j]) << (4 * (j % 2)));
    for (int64_t i = 0; i < nb; ++i) wb[i] = row[binary[i]];
    for (int64_t b0 = 0, blk = 0; b0 < nb; b0 += p.block, ++blk) {
      const int64_t n = std::min<int64_t>(p.block, nb - b0);
      const Binarised b = ptq161_binarise(wb.data() + b0, usable(db.data() + b0, n), n, plus.data() + b0);
      const float mu = fp16_round(b.mu);
      put_u16(sc + 4 + 4 * blk, float_to_fp16(static_cast<float>(b.alpha)));
      put_u16(sc + 6 + 4 * blk, float_to_fp16(mu));
      // The signs for the stored mu (alpha >= 0: the nearer of mu +- alpha).
      for (int64_t i = b0; i < b0 + n; ++i) plus[i] = wb[i] >= mu ? 1 : 0;
    }
    for (int64_t i = 0; i < nb; ++i) signs[i / 8] |= static_cast<uint8_t>(plus[i] << (i % 8));
  }
  return t;
}

}  // namespace lowbit
