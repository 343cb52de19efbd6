// AdaQuant-style refinement of scales and rounding on H (quant/adaquant.h has
// the maths). Layout of the work: rows are taken kRowBlock at a time; for a
// block, d = W − Q [block, cols] and g = d H_λ (one dgemm, so the gradient is
// exact at the start of every step), then each row runs its scale fit and its
// rounding sweep on its own copy of d and g, in parallel over the pool.
#include "quant/adaquant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <cblas.h>

#include "formats/block_kernels.h"
#include "formats/scale_type.h"
#include "quant/quantizers.h"

namespace lowbit {
namespace {

constexpr int64_t kRowBlock = 256;

// The element grid: every value encode can produce, ascending, with the code
// stored for it (values decoded from several codes, like ±0, keep encode's).
struct ElementGrid {
  std::vector<double> value;            // [levels] ascending
  std::vector<uint16_t> code;           // [levels]
  std::vector<int32_t> level_of_code;   // [2^bits], −1 for reserved or non-finite codes
};

Expected<ElementGrid> element_grid(const BlockFormat& f) {
  const ElementCodec& codec = *f.element.codec;
  const int bits = f.layout.code_bits;
  if (bits > 16) return make_error("adaquant: {} has {}-bit codes (at most 16)", f.name(), bits);
  const uint32_t n_codes = 1u << bits;
  std::vector<std::pair<double, uint32_t>> vc;  // (value, canonical code)
  for (uint32_t c = 0; c < n_codes; ++c) {
    const float v = codec.decode(c);
    if (codec.is_reserved(c) || !std::isfinite(v)) continue;
    vc.emplace_back(static_cast<double>(v), codec.encode(v));
  }
  std::sort(vc.begin(), vc.end());
  vc.erase(std::unique(vc.begin(), vc.end(), [](const auto& a, const auto& b) { return a.first == b.first; }),
           vc.end());
  ElementGrid g;
  for (const auto& [v, c] : vc) {
    g.value.push_back(v);
    g.code.push_back(static_cast<uint16_t>(c));
  }
  g.level_of_code.assign(n_codes, -1);
  for (uint32_t c = 0; c < n_codes; ++c) {
    const float v = codec.decode(c);
    if (codec.is_reserved(c) || !std::isfinite(v)) continue;
    const auto it = std::lower_bound(g.value.begin(), g.value.end(), static_cast<double>(v));
    g.level_of_code[c] = static_cast<int32_t>(it - g.value.begin());
  }
  return g;
}

// The scale blocks of the matrix: which block element (r, c) uses and what the
// kernels multiply by (block_format.h: decode(scale code) · s_tensor · 2^unit, + m).
class ScaleTable {
 public:
  ScaleTable(const BlockFormat& f, const QuantizedTensor& t)
      : type_(f.spec.scale_type), bytes_(f.layout.scale_bytes), asym_(f.spec.asymmetric),
        factor_((f.spec.tensor_scale ? t.tensor_scale : 1.0f) * std::ldexp(1.0f, f.spec.element_unit_log2)) {
    const BlockLayout& l = f.layout;
    gran_ = l.granularity;
    group_ = (gran_ == ScaleGranularity::kGroup || gran_ == ScaleGranularity::kBlock2D) ? l.group_cols : t.cols;
    grid_cols_ = std::max<int64_t>(1, scale_cols(l, t.cols));
    block_rows_ = gran_ == ScaleGranularity::kBlock2D ? l.group_rows : 1;
    const int64_t n = scale_count(l, t.rows, t.cols);
    scale_code_.resize(static_cast<size_t>(n));
    min_code_.assign(static_cast<size_t>(n), 0);
    for (int64_t b = 0; b < n; ++b) {
      scale_code_[b] = read_scale_code(t.scales.data() + b * bytes_, bytes_);
      if (asym_) min_code_[b] = read_scale_code(t.mins.data() + b * bytes_, bytes_);
    }
  }

  // Columns per group (cols for row, tensor and none).
  int64_t group() const { return group_; }
  // Whether every row owns its blocks, so a row may refit them alone.
  bool rows_own_blocks() const { return gran_ == ScaleGranularity::kRow || gran_ == ScaleGranularity::kGroup; }
  int64_t block(int64_t r, int64_t c) const {
    switch (gran_) {
      case ScaleGranularity::kNone: return -1;
      case ScaleGranularity::kTensor: return 0;
      case ScaleGranularity::kBlock2D: return (r / block_rows_) * grid_cols_ + c / group_;
      default: return r * grid_cols_ + c / group_;
    }
  }
  float scale_of_code(uint32_t code) const { return decode_scale(type_, code) * factor_; }
  float min_of_code(uint32_t code) const { return asym_ ? decode_scale(type_, code) : 0.0f; }
  float scale(int64_t b) const { return b < 0 ? factor_ : scale_of_code(scale_code_[b]); }
  float offset(int64_t b) const { return b < 0 ? 0.0f : min_of_code(min_code_[b]); }
  // Stored value of element value v in block b, as the reference decoder computes it.
  static float value(double v, float s, float m, bool asym) {
    const float scaled = static_cast<float>(v) * s;  // its own statement: never an FMA
    return asym ? scaled + m : scaled;
  }
  bool asymmetric() const { return asym_; }
  ScaleType type() const { return type_; }
  float factor() const { return factor_; }
  uint32_t max_code() const { return bytes_ >= 4 ? 0xFFFFFFFFu : (1u << (8 * bytes_)) - 1u; }

  std::vector<uint32_t>& scale_codes() { return scale_code_; }
  std::vector<uint32_t>& min_codes() { return min_code_; }

  void write(QuantizedTensor& t) const {
    for (size_t b = 0; b < scale_code_.size(); ++b) {
      write_scale_code(t.scales.data() + b * bytes_, scale_code_[b], bytes_);
      if (asym_) write_scale_code(t.mins.data() + b * bytes_, min_code_[b], bytes_);
    }
  }

 private:
  ScaleType type_;
  int bytes_;
  bool asym_;
  float factor_;
  ScaleGranularity gran_ = ScaleGranularity::kRow;
  int64_t group_ = 1, grid_cols_ = 1, block_rows_ = 1;
  std::vector<uint32_t> scale_code_, min_code_;  // [blocks]
};

// One row's refinement against H_λ [cols, cols]. d, g: [cols] the row's w − q and
// H_λ d on entry, kept up to date; level: [cols] its grid indices; q: [cols] its
// stored values. Returns whether anything changed.
class RowRefiner {
 public:
  RowRefiner(const ElementGrid& grid, ScaleTable& scales, const double* h, int64_t cols, bool fit_scales)
      : grid_(grid), scales_(scales), h_(h), cols_(cols), fit_scales_(fit_scales) {}

  bool run(int64_t r, const float* w, double* d, double* g, int32_t* level, float* q) {
    double f = 0.0;
    for (int64_t j = 0; j < cols_; ++j) f += d[j] * g[j];
    // Moves must lower the objective by more than the rounding noise of its sums.
    tol_ = 1e-12 * std::max(f, std::numeric_limits<double>::min());
    bool changed = false;
    if (fit_scales_) {
      for (int64_t c0 = 0; c0 < cols_; c0 += scales_.group()) {
        changed |= fit_group(r, c0, std::min(cols_, c0 + scales_.group()), w, d, g, level, q);
      }
    }
    for (int64_t j = 0; j < cols_; ++j) changed |= round_column(r, j, w, d, g, level, q);
    return changed;
  }

 private:
  // g −= δ H_λ[j, :] (H symmetric: its row j is its column j).
  void update_gradient(int64_t j, double delta, double* g) const {
    const double* hj = h_ + j * cols_;
    for (int64_t k = 0; k < cols_; ++k) g[k] -= delta * hj[k];
  }

  // Step 1 for the group of columns [c0, c1) of row r.
  bool fit_group(int64_t r, int64_t c0, int64_t c1, const float* w, double* d, double* g, int32_t* level, float* q) {
    const int64_t n = c1 - c0;
    const bool asym = scales_.asymmetric();
    v_.resize(n);
    hv_.assign(n, 0.0);
    h1_.assign(n, 0.0);
    hq_.assign(n, 0.0);
    for (int64_t i = 0; i < n; ++i) v_[i] = grid_.value[level[c0 + i]];
    for (int64_t i = 0; i < n; ++i) {  // H_JJ v, H_JJ 1, H_JJ q_J
      const double* hi = h_ + (c0 + i) * cols_ + c0;
      double sv = 0.0, s1 = 0.0, sq = 0.0;
      for (int64_t k = 0; k < n; ++k) {
        sv += hi[k] * v_[k];
        s1 += hi[k];
        sq += hi[k] * static_cast<double>(q[c0 + k]);
      }
      hv_[i] = sv;
      h1_[i] = s1;
      hq_[i] = sq;
    }
    double b1 = 0.0, b2 = 0.0, c11 = 0.0, c12 = 0.0, c22 = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double rhs = g[c0 + i] + hq_[i];  // (H d⁰)_J
      b1 += v_[i] * rhs;
      b2 += rhs;
      c11 += v_[i] * hv_[i];
      c12 += hv_[i];
      c22 += h1_[i];
    }
    if (!(c11 > 0.0)) return false;
    auto phi = [&](double s, double m) {
      return -2.0 * (s * b1 + m * b2) + s * s * c11 + 2.0 * s * m * c12 + m * m * c22;
    };
    double s_opt = b1 / c11;
    if (asym) {
      const double det = c11 * c22 - c12 * c12;
      if (!(c22 > 0.0) || !(det > 1e-12 * c11 * c22)) return false;  // v constant: S and M not separable
      s_opt = (c22 * b1 - c12 * b2) / det;
    }
    const int64_t b = scales_.block(r, c0);
    uint32_t& sc = scales_.scale_codes()[b];
    uint32_t& mc = scales_.min_codes()[b];
    const float s_cur = scales_.scale_of_code(sc), m_cur = scales_.min_of_code(mc);
    double best = phi(s_cur, m_cur);
    const double start = best;
    uint32_t best_s = sc, best_m = mc;
    const uint32_t s0 = encode_scale(scales_.type(), static_cast<float>(s_opt / scales_.factor()));
    for (int ds = -1; ds <= 1; ++ds) {
      const int64_t cs = static_cast<int64_t>(s0) + ds;
      if (cs < 0 || cs > scales_.max_code()) continue;
      const float s = scales_.scale_of_code(static_cast<uint32_t>(cs));
      if (!std::isfinite(s) || !(s > 0.0f)) continue;
      if (!asym) {
        const double p = phi(s, 0.0);
        if (p < best) best = p, best_s = static_cast<uint32_t>(cs);
        continue;
      }
      const double m_opt = (b2 - c12 * s) / c22;  // the best minimum for this scale
      const uint32_t m0 = encode_scale(scales_.type(), static_cast<float>(m_opt));
      for (int dm = -1; dm <= 1; ++dm) {
        const int64_t cm = static_cast<int64_t>(m0) + dm;
        if (cm < 0 || cm > scales_.max_code()) continue;
        const float m = scales_.min_of_code(static_cast<uint32_t>(cm));
        if (!std::isfinite(m)) continue;
        const double p = phi(s, m);
        if (p < best) best = p, best_s = static_cast<uint32_t>(cs), best_m = static_cast<uint32_t>(cm);
      }
    }
    if (!(best < start - tol_)) return false;
    sc = best_s;
    mc = best_m;
    const float s = scales_.scale_of_code(sc), m = scales_.min_of_code(mc);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t j = c0 + i;
      const float qn = ScaleTable::value(v_[i], s, m, asym);
      const double delta = static_cast<double>(qn) - static_cast<double>(q[j]);
      if (delta == 0.0) continue;
      q[j] = qn;
      d[j] = static_cast<double>(w[j]) - static_cast<double>(qn);
      update_gradient(j, delta, g);
    }
    return true;
  }

  // Step 2 for column j of row r: AdaRound's up/down choice around (w_j − M)/S.
  bool round_column(int64_t r, int64_t j, const float* w, double* d, double* g, int32_t* level, float* q) {
    const double hjj = h_[j * cols_ + j];
    if (!(hjj > 0.0)) return false;
    const int64_t b = scales_.block(r, j);
    const float s = scales_.scale(b), m = scales_.offset(b);
    if (!(s > 0.0f)) return false;
    const std::vector<double>& val = grid_.value;
    const int32_t n_levels = static_cast<int32_t>(val.size());
    const double t = (static_cast<double>(w[j]) - m) / s;
    const int32_t above = static_cast<int32_t>(std::upper_bound(val.begin(), val.end(), t) - val.begin());
    const int32_t lo = std::max(0, above - 1);
    const int32_t hi = above >= n_levels ? n_levels - 1 : (val[lo] == t ? lo : above);
    const bool asym = scales_.asymmetric();
    double best = -tol_;
    int32_t best_level = -1;
    float best_q = 0.0f;
    for (const int32_t k : {lo, hi}) {
      if (k == level[j]) continue;
      const float qn = ScaleTable::value(val[k], s, m, asym);
      const double delta = static_cast<double>(qn) - static_cast<double>(q[j]);
      const double change = -2.0 * delta * g[j] + delta * delta * hjj;
      if (change < best) best = change, best_level = k, best_q = qn;
    }
    if (best_level < 0) return false;
    const double delta = static_cast<double>(best_q) - static_cast<double>(q[j]);
    level[j] = best_level;
    q[j] = best_q;
    d[j] = static_cast<double>(w[j]) - static_cast<double>(best_q);
    update_gradient(j, delta, g);
    return true;
  }

  const ElementGrid& grid_;
  ScaleTable& scales_;
  const double* h_;
  int64_t cols_;
  bool fit_scales_;
  double tol_ = 0.0;
  std::vector<double> v_, hv_, h1_, hq_;  // [group] scratch
};

Status check_start(const BlockFormat& format, const QuantizedWeight& start, const float* w, int64_t rows,
                   int64_t cols, const std::vector<double>& hessian, const AdaQuantOptions& o) {
  if (start.format != format.name()) {
    return make_error("adaquant: the start is in {}, not {}", start.format, format.name());
  }
  if (!start.outliers.empty() || start.rank > 0) {
    return make_error("adaquant: the start of {} has side tables (outliers or LoRC factors); refine before adding them",
                      format.name());
  }
  if (start.rows() != rows || start.cols() != cols || rows < 1 || cols < 1 || w == nullptr) {
    return make_error("adaquant: start [{}, {}] does not match the weight [{}, {}]", start.rows(), start.cols(), rows,
                      cols);
  }
  if (hessian.size() != static_cast<size_t>(cols * cols)) {
    return make_error("adaquant: H has {} values, expected [{}, {}]", hessian.size(), cols, cols);
  }
  if (o.steps < 1) return make_error("adaquant: steps must be >= 1, got {}", o.steps);
  if (!(o.damp >= 0.0f) || !std::isfinite(o.damp)) return make_error("adaquant: damp must be >= 0, got {}", o.damp);
  return Status::ok_status();
}

}  // namespace

Expected<QuantizedWeight> adaquant_refine(const BlockFormat& format, const QuantizedWeight& start, const float* w,
                                          int64_t rows, int64_t cols, const std::vector<double>& hessian,
                                          const AdaQuantOptions& options, AdaQuantStats* stats, ThreadPool* pool) {
  LB_RETURN_IF_ERROR(check_start(format, start, w, rows, cols, hessian, options));
  LB_ASSIGN_OR_RETURN(const ElementGrid grid, element_grid(format));

  std::vector<double> h = hessian;  // [cols, cols] H_λ
  double mean_diag = 0.0;
  for (int64_t j = 0; j < cols; ++j) mean_diag += h[j * cols + j];
  mean_diag /= static_cast<double>(cols);
  const double lambda = static_cast<double>(options.damp) * mean_diag;
  for (int64_t j = 0; j < cols; ++j) h[j * cols + j] += lambda;

  std::vector<float> q(static_cast<size_t>(rows * cols));  // [rows, cols] stored values, kept current
  LB_RETURN_IF_ERROR(dequantize_reference(format, start.tensor, q.data()));
  const double start_error = hessian_proxy_error(w, q.data(), rows, cols, h);

  const int bits = format.layout.code_bits;
  const int64_t row_bytes = row_code_bytes(bits, cols);
  const ScaleKernels& packer = scalar_scale_kernels();
  std::vector<uint16_t> start_codes(static_cast<size_t>(rows * cols));  // [rows, cols]
  std::vector<int32_t> level(start_codes.size());                       // [rows, cols] grid indices
  for (int64_t r = 0; r < rows; ++r) {
    packer.unpack(start.tensor.codes.data() + r * row_bytes, cols, bits, start_codes.data() + r * cols);
    for (int64_t c = 0; c < cols; ++c) {
      const int32_t l = grid.level_of_code[start_codes[r * cols + c]];
      if (l < 0) {
        return make_error("adaquant: code {} at ({}, {}) is not a value of {}", start_codes[r * cols + c], r, c,
                          format.name());
      }
      level[r * cols + c] = l;
    }
  }
  ScaleTable scales(format, start.tensor);
  const std::vector<uint32_t> start_scale_codes = scales.scale_codes(), start_min_codes = scales.min_codes();
  const bool fit_scales = options.scales && scales.rows_own_blocks();

  const int64_t block = std::min(kRowBlock, rows);
  std::vector<double> d(static_cast<size_t>(block * cols)), g(d.size());  // [block, cols]
  std::vector<uint8_t> changed(static_cast<size_t>(block));
  int steps_run = 0;
  for (int step = 0; step < options.steps; ++step) {
    bool any = false;
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
      const int64_t n_rows = std::min(block, rows - r0);
      for (int64_t i = 0; i < n_rows * cols; ++i) {
        d[i] = static_cast<double>(w[r0 * cols + i]) - static_cast<double>(q[r0 * cols + i]);
      }
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n_rows), static_cast<int>(cols),
                  static_cast<int>(cols), 1.0, d.data(), static_cast<int>(cols), h.data(), static_cast<int>(cols), 0.0,
                  g.data(), static_cast<int>(cols));
      auto refine_rows = [&](int64_t i0, int64_t i1, int) {
        RowRefiner refiner(grid, scales, h.data(), cols, fit_scales);
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t r = r0 + i;
          changed[i] = refiner.run(r, w + r * cols, d.data() + i * cols, g.data() + i * cols, level.data() + r * cols,
                                   q.data() + r * cols);
        }
      };
      if (pool != nullptr && pool->size() > 1) {
        pool->parallel_for(n_rows, refine_rows);
      } else {
        refine_rows(0, n_rows, 0);
      }
      for (int64_t i = 0; i < n_rows; ++i) any |= changed[i] != 0;
    }
    ++steps_run;
    if (!any) break;
  }

  QuantizedWeight out;
  out.format = start.format;
  out.tensor = start.tensor;
  std::vector<uint16_t> codes(static_cast<size_t>(cols));  // [cols] one row
  int64_t codes_changed = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      codes[c] = grid.code[level[r * cols + c]];
      codes_changed += codes[c] != start_codes[r * cols + c];
    }
    std::fill_n(out.tensor.codes.data() + r * row_bytes, row_bytes, uint8_t{0});
    packer.pack(codes.data(), cols, bits, out.tensor.codes.data() + r * row_bytes);
  }
  scales.write(out.tensor);
  int64_t scales_changed = 0;
  for (size_t b = 0; b < start_scale_codes.size(); ++b) {
    scales_changed += start_scale_codes[b] != scales.scale_codes()[b] || start_min_codes[b] != scales.min_codes()[b];
  }
  // The result as the files decode it, against the start.
  LB_RETURN_IF_ERROR(dequantize_reference(format, out.tensor, q.data()));
  const double final_error = hessian_proxy_error(w, q.data(), rows, cols, h);
  const bool keep = !(final_error < start_error);
  if (stats != nullptr) {
    stats->start_error = start_error;
    stats->final_error = keep ? start_error : final_error;
    stats->codes_changed = keep ? 0 : codes_changed;
    stats->scales_changed = keep ? 0 : scales_changed;
    stats->steps_run = steps_run;
    stats->kept_start = keep;
  }
  if (keep) return start;
  return out;
}

std::vector<float> bias_correction(const float* w, const float* w_hat, int64_t rows, int64_t cols,
                                   const std::vector<double>& mean_x) {
  std::vector<float> out(static_cast<size_t>(rows), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
      sum += (static_cast<double>(w[r * cols + c]) - static_cast<double>(w_hat[r * cols + c])) * mean_x[c];
    }
    out[r] = static_cast<float>(sum);
  }
  return out;
}

}  // namespace lowbit
