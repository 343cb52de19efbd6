// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate
// Post-Training Quantization for Generative Pre-trained Transformers"), as in
// the authors' reference gptq.py (fasterquant):
//
//   dead columns (H_jj = 0): H_jj = 1, W[:, j] = 0
//   act-order: columns sorted by descending H_jj (stable: ties by index)
//   H += λ I, λ = damp · mean(diag H)
//   U = chol(H⁻¹), upper (Uᵀ U = H⁻¹)
//   for each column p in order:  q_p = quant(w_p)
//                                e = (w_p − q_p) / U_pp
//                                w_j −= e · U_pj   for every later column j
//
// which is the OBS update with H⁻¹ restricted to the columns not yet quantized
// (U's row p is that inverse's row p over its diagonal's square root). The
// update is applied lazily (Section 3, step 2): inside a block of block_size
// columns at once, to the later columns one block at a time (a BLAS-3 dgemm).
// All of the algebra is in double; a column is rounded to float just before it
// is quantized, as the formats layer takes float.
//
// Scale groups. A column's group is fixed by its original index (the stored
// format has contiguous groups and no permutation table). With static_groups
// every group's scales come from W before the pass. Otherwise a group's scales
// are chosen when the pass reaches the first of its columns, from the current,
// updated weights of all its columns, with the formats layer's rule and search
// (block_scales.h). Without act-order that is the reference exactly when G is a
// multiple of block_size or the reverse (the reference then reads the group
// from W, which lags by the lazy updates of the current block otherwise); here a
// block is cut short where a group starts whose columns are not all updated,
// so the result does not depend on block_size. With act-order the reference
// groups columns by their permuted position and stores a permutation (g_idx);
// we group by original index instead, so act-order without static groups
// differs from it there. Row- and tensor-granularity formats have one group,
// chosen from W at the start, as the reference's find_params(W). The last
// group of a row may be partial (576 columns with G = 128: 4 x 128 + 64).
//
// Trellis codes (formats/trellis_code.h): BlockLDLQ of QTIP (Tseng et al.
// 2024). The 64 columns of a sequence are one Viterbi path, so the pass takes
// blocks of 64 columns (ColumnScales::joint_cols), codes each block jointly from
// its current values, and feeds its error to the later columns through the same
// factor U: with E the errors the column-wise loop would have accumulated,
// W_B − Q_B = U_BBᵀ E (U_BB the block's upper-triangular diagonal block), so E is
// one triangular solve and the lazy update is unchanged. With H = I (U diagonal)
// nothing is fed forward and the result is the plain trellis RTN.
//
// VQ codes (formats/vq_code.h): the same joint step with blocks of 8 columns
// (one vector), as GPTVQ (van Baalen et al. 2024) does for 1-D..4-D vectors; the
// codebooks are trained from W before the pass (quant/vq_quantize.h), the group
// scales chosen when the pass reaches each group, from its updated columns.
//
// GGUF block types (formats/gguf_blocks.h) are groups like any other: a block of
// 32 or 256 columns has its header (fp16 d; for the K types the 6-bit sub-block
// scales and mins under the super-block scales) chosen when the pass reaches the
// block, from the updated weights, by the type's own search, and each column is
// then quantized with that header as stored (quant/column_scales.h). With
// `importance` the choice of every group's scales weights column j by H_jj, as
// RTN with importance does.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <cblas.h>

#include "quant/linalg.h"
#include "quant/quantizers.h"

namespace lowbit {

double hessian_proxy_error(const float* w, const float* q, int64_t rows, int64_t cols,
                           const std::vector<double>& hessian) {
  // Σ_r d_r H d_rᵀ, d = W − Q, kRows rows at a time: the buffers are [kRows, cols]
  // instead of two [rows, cols] (184 MB for TinyLlama's down_proj).
  constexpr int64_t kRows = 128;
  const int64_t block = std::min(kRows, rows);
  std::vector<double> d(static_cast<size_t>(block * cols)), dh(d.size());  // [block, cols]
  double sum = 0.0;
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t n_rows = std::min(block, rows - r0);
    const size_t count = static_cast<size_t>(n_rows * cols);
    for (size_t i = 0; i < count; ++i) {
      d[i] = static_cast<double>(w[r0 * cols + i]) - static_cast<double>(q[r0 * cols + i]);
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n_rows), static_cast<int>(cols),
                static_cast<int>(cols), 1.0, d.data(), static_cast<int>(cols), hessian.data(), static_cast<int>(cols),
                0.0, dh.data(), static_cast<int>(cols));
    for (size_t i = 0; i < count; ++i) sum += d[i] * dh[i];
  }
  return sum;
}

namespace {

Status check_inputs(const WeightFormat& format, const float* w, int64_t rows, int64_t cols,
                    const std::vector<double>& hessian, const GptqOptions& o) {
  const std::string name = format.name();
  if (rows < 1 || cols < 1 || w == nullptr) return make_error("gptq {}: empty weight [{}, {}]", name, rows, cols);
  LB_RETURN_IF_ERROR(format.check_shape(rows, cols).with_context("gptq"));
  if (static_cast<int64_t>(hessian.size()) != cols * cols) {
    return make_error("gptq {}: Hessian has {} values, expected {} x {}", name, hessian.size(), cols, cols);
  }
  if (!(o.damp_percent >= 0.0f) || !std::isfinite(o.damp_percent)) {
    return make_error("gptq {}: damp_percent {} must be finite and >= 0", name, o.damp_percent);
  }
  if (o.block_size < 1) return make_error("gptq {}: block_size {} must be >= 1", name, o.block_size);
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) return make_error("gptq {}: weight [{}, {}] = {} is not finite", name, i / cols, i % cols, w[i]);
  }
  for (size_t i = 0; i < hessian.size(); ++i) {
    if (!std::isfinite(hessian[i])) return make_error("gptq {}: Hessian value {} is not finite", name, i);
  }
  return Status::ok_status();
}

}  // namespace

Expected<QuantizedWeight> quantize_gptq(const WeightFormat& format, const float* w, int64_t rows, int64_t cols,
                                        const std::vector<double>& hessian, const GptqOptions& options,
                                        GptqStats* stats) {
  LB_RETURN_IF_ERROR(check_inputs(format, w, rows, cols, hessian, options));
  const int64_t n = cols;
  // H is read in place, not copied (8·cols² bytes: 254 MB for a 5632-wide input): a
  // dead column (H_jj = 0, an input that was always zero) reads as H_jj = 1 and its
  // weights are zeroed.
  const std::vector<double>& h = hessian;  // [cols, cols]
  std::vector<double> diag(static_cast<size_t>(n));  // [cols] H_jj, dead columns 1
  std::vector<float> w0(w, w + rows * cols);     // [rows, cols] dead columns zeroed
  int dead = 0;
  for (int64_t j = 0; j < n; ++j) {
    diag[j] = h[j * n + j];
    if (diag[j] != 0.0) continue;
    diag[j] = 1.0;
    for (int64_t r = 0; r < rows; ++r) w0[r * cols + j] = 0.0f;
    ++dead;
  }

  std::vector<float> importance;  // [cols] H_jj before damping, when the scale choice is weighted
  if (options.importance) {
    importance.resize(static_cast<size_t>(cols));
    for (int64_t j = 0; j < n; ++j) importance[j] = static_cast<float>(diag[j]);
  }
  ColumnScalesOptions so;
  so.search = options.search;
  so.pool = options.pool;
  so.weights = w0.data();  // VQ codebooks are trained on W before the pass (dead columns zeroed)
  so.importance = importance;
  for (float v : w0) so.tensor_amax = std::max(so.tensor_amax, std::fabs(v));
  LB_ASSIGN_OR_RETURN(std::unique_ptr<ColumnScales> scales, format.column_scales(rows, cols, so));
  if (scales->joint_cols() > 1 && options.act_order) {
    return make_error("gptq {}: act_order is not possible: {} consecutive columns are coded jointly", format.name(),
                      scales->joint_cols());
  }
  auto importance_of = [&](int64_t c0, int64_t len) {
    return importance.empty() ? std::span<const float>() : std::span<const float>(importance).subspan(c0, len);
  };
  const int64_t group = scales->group_cols();
  const int64_t n_groups = ceil_div(cols, group);
  std::vector<uint8_t> group_done(static_cast<size_t>(n_groups), 0);
  if (options.static_groups) {
    LB_RETURN_IF_ERROR(scales->choose(w0.data(), 0, cols, importance_of(0, cols)));
    std::fill(group_done.begin(), group_done.end(), 1);
  }

  std::vector<int64_t> perm(static_cast<size_t>(n)), pos(perm.size());  // pass order -> column, column -> position
  std::iota(perm.begin(), perm.end(), 0);
  if (options.act_order) {
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return diag[a] > diag[b]; });
  }
  for (int64_t p = 0; p < n; ++p) pos[perm[p]] = p;

  double mean_diag = 0.0;
  for (int64_t j = 0; j < n; ++j) mean_diag += diag[j];
  const double damp = static_cast<double>(options.damp_percent) * mean_diag / static_cast<double>(n);
  std::vector<double> u(static_cast<size_t>(n * n));  // [n, n] permuted, damped, then its inverse's Cholesky factor
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) u[i * n + j] = h[perm[i] * n + perm[j]];
    u[i * n + i] = diag[perm[i]] + damp;
  }
  LB_RETURN_IF_ERROR(inverse_cholesky_upper(u, n).with_context("gptq " + format.name()));

  // Working weights transposed, in pass order: wt[p] is column perm[p]. [cols, rows]
  std::vector<double> wt(static_cast<size_t>(n * rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t p = 0; p < n; ++p) wt[p * rows + r] = w0[r * cols + perm[p]];
  }
  // Joint formats (trellis codes: 64 columns per Viterbi path; VQ: 8) take blocks of
  // exactly their joint width, in column order.
  const int64_t joint = scales->joint_cols();
  const int64_t block = joint > 1 ? joint : options.block_size;
  std::vector<float> xb(joint > 1 ? static_cast<size_t>(rows * joint) : 0), qb(xb.size());  // [rows, joint]
  std::vector<float> q(stats != nullptr ? static_cast<size_t>(rows * cols) : 0);  // [rows, cols]
  std::vector<double> err(static_cast<size_t>(std::min(block, n) * rows));  // [block, rows] scaled errors
  std::vector<float> x(static_cast<size_t>(rows)), qc(x.size());           // [rows]
  std::vector<float> slice;                                                 // [rows, group]

  // Chooses the scales of column perm[p]'s group when the pass first reaches it;
  // false: the group has columns that still owe block [i1, i2)'s lazy update, so
  // the block ends before p.
  auto prepare_group = [&](int64_t p, int64_t i1, int64_t i2) -> Expected<bool> {
    const int64_t g = perm[p] / group;
    if (group_done[g]) return true;
    const int64_t c0 = g * group, len = std::min(group, cols - c0);
    bool lagging = false;
    for (int64_t k = c0; k < c0 + len; ++k) lagging = lagging || pos[k] >= i2;
    if (lagging && p > i1) return false;
    slice.resize(static_cast<size_t>(rows * len));
    for (int64_t k = 0; k < len; ++k) {
      const double* col = wt.data() + pos[c0 + k] * rows;
      for (int64_t r = 0; r < rows; ++r) slice[r * len + k] = static_cast<float>(col[r]);
    }
    LB_RETURN_IF_ERROR(scales->choose(slice.data(), c0, len, importance_of(c0, len)));
    group_done[g] = 1;
    return true;
  };
  auto column_of = [&](int64_t p, float* out) -> Status {
    const double* wp = wt.data() + p * rows;
    for (int64_t r = 0; r < rows; ++r) {
      out[r] = static_cast<float>(wp[r]);
      if (!std::isfinite(out[r])) {
        return make_error("gptq {}: column {} became non-finite; raise the damping", format.name(), perm[p]);
      }
    }
    return Status::ok_status();
  };

  int64_t i1 = 0;
  while (i1 < n) {
    const int64_t i2 = std::min(i1 + block, n);
    int64_t p = i1;
    if (joint > 1) {
      // BlockLDLQ: the block's columns are coded together from their current values
      // (no feedback inside the block); its error W_B − Q_B = U_BBᵀ E (what the
      // column-wise loop below would have accumulated) gives E for the lazy update.
      LB_RETURN_IF_ERROR(prepare_group(i1, i1, i2).status());
      const int64_t nb = i2 - i1;
      for (int64_t k = 0; k < nb; ++k) {
        LB_RETURN_IF_ERROR(column_of(i1 + k, x.data()));
        for (int64_t r = 0; r < rows; ++r) xb[r * nb + k] = x[r];
      }
      LB_RETURN_IF_ERROR(scales->quantize_block(i1, xb.data(), qb.data()));
      for (int64_t k = 0; k < nb; ++k) {
        const double* wp = wt.data() + (i1 + k) * rows;
        double* e = err.data() + k * rows;
        for (int64_t r = 0; r < rows; ++r) e[r] = wp[r] - static_cast<double>(qb[r * nb + k]);
        if (!q.empty()) {
          for (int64_t r = 0; r < rows; ++r) q[r * cols + i1 + k] = qb[r * nb + k];
        }
      }
      cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasTrans, CblasNonUnit, static_cast<int>(nb),
                  static_cast<int>(rows), 1.0, u.data() + i1 * n + i1, static_cast<int>(n), err.data(),
                  static_cast<int>(rows));
      p = i2;
    }
    for (; p < i2; ++p) {
      const int64_t c = perm[p];
      LB_ASSIGN_OR_RETURN(bool ready, prepare_group(p, i1, i2));
      if (!ready) break;
      const double* wp = wt.data() + p * rows;
      LB_RETURN_IF_ERROR(column_of(p, x.data()));
      scales->quantize_column(c, x.data(), qc.data());
      if (!q.empty()) {
        for (int64_t r = 0; r < rows; ++r) q[r * cols + c] = qc[r];
      }
      const double d = u[p * n + p];
      double* e = err.data() + (p - i1) * rows;
      for (int64_t r = 0; r < rows; ++r) e[r] = (wp[r] - static_cast<double>(qc[r])) / d;
      // Inside the block, at once: w_j −= e · U_pj for p < j < i2.
      if (p + 1 < i2) {
        cblas_dger(CblasRowMajor, static_cast<int>(i2 - p - 1), static_cast<int>(rows), -1.0, u.data() + p * n + p + 1,
                   1, e, 1, wt.data() + (p + 1) * rows, static_cast<int>(rows));
      }
    }
    // Columns [i1, p) are done; [p, i2) are current. Later ones: W[i2:] −= U[i1:p, i2:]ᵀ E.
    if (p > i1 && i2 < n) {
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(n - i2), static_cast<int>(rows),
                  static_cast<int>(p - i1), -1.0, u.data() + i1 * n + i2, static_cast<int>(n), err.data(),
                  static_cast<int>(rows), 1.0, wt.data() + i2 * rows, static_cast<int>(rows));
    }
    i1 = p;
  }

  QuantizedWeight out;
  out.format = format.name();
  LB_ASSIGN_OR_RETURN(out.tensor, scales->pack());
  if (stats != nullptr) {
    stats->dead_columns = dead;
    stats->proxy_error = hessian_proxy_error(w, q.data(), rows, cols, hessian);
  }
  return out;
}

}  // namespace lowbit
