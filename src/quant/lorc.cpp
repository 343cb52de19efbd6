// LoRC, low-rank compensation (Yao et al. 2023, "ZeroQuant-V2", Section 5):
// the residual R = W − Ŵ [rows, cols] of a quantized weight (Ŵ = dequantized
// codes with outliers, without any earlier correction) is approximated by its
// rank-r truncated SVD R ≈ U_r Σ_r V_rᵀ, stored as two factors
//   U = U_r Σ_r^½ [rows, r],   V = Σ_r^½ V_rᵀ [r, cols]
// so both have the same scale and quantize alike, and W ≈ Ŵ + U V.
//
// The SVD comes from the eigen-decomposition of the smaller Gram matrix (in
// double): with cols <= rows, the top r eigenvectors v_j of RᵀR (dsyevr, only
// those r are computed) are the right singular vectors, and t_j = R v_j has norm
// σ_j, so U[:, j] = t_j / sqrt(σ_j), V[j, :] = sqrt(σ_j) v_jᵀ and U V = R V_r V_rᵀ,
// the projection of R's rows onto the top-r right singular subspace: exactly R
// at full rank (V_r orthonormal), the best rank-r approximation otherwise, and
// its error ‖R‖² − Σ_{j<=r} σ_j² does not grow with r. With rows < cols the same
// on R Rᵀ from the left. Squaring R costs accuracy only in the σ_j far below
// σ_1, which a low-rank correction does not use; σ_j is taken as ‖R v_j‖ rather
// than sqrt(λ_j) so it is accurate whatever the eigenvalue's error.
#include <algorithm>
#include <cmath>

#include <cblas.h>

#include "quant/linalg.h"
#include "quant/quantizers.h"

namespace lowbit {

Status add_lowrank_correction(QuantizedWeight& q, const float* w, int rank, const std::string& factor_format) {
  const int64_t rows = q.rows(), cols = q.cols();
  const int64_t small = std::min(rows, cols);
  if (rows < 1 || cols < 1 || w == nullptr) return make_error("lorc: empty weight [{}, {}]", rows, cols);
  if (rank < 0 || rank > small) {
    return make_error("lorc: rank {} must be in [0, {}] for a [{}, {}] matrix", rank, small, rows, cols);
  }
  if (rank == 0) {
    q.rank = 0;
    q.lowrank_format.clear();
    q.lowrank_u = QuantizedTensor();
    q.lowrank_v = QuantizedTensor();
    return Status::ok_status();
  }
  std::vector<float> wq(static_cast<size_t>(rows * cols));  // [rows, cols] Ŵ without the correction being replaced
  {
    QuantizedWeight base;
    base.format = q.format;
    base.tensor = q.tensor;
    base.outliers = q.outliers;
    LB_RETURN_IF_ERROR(dequantize_weight(base, wq.data()));
  }
  std::vector<double> res(wq.size());  // R [rows, cols]
  for (size_t i = 0; i < res.size(); ++i) res[i] = static_cast<double>(w[i]) - static_cast<double>(wq[i]);
  wq = std::vector<float>();

  const bool right = cols <= rows;  // eigenvectors of RᵀR [cols, cols], else of R Rᵀ [rows, rows]
  const int64_t other = right ? rows : cols;
  std::vector<double> gram(static_cast<size_t>(small * small));
  // Upper triangle row-major = the lower one dsyevr reads column-major.
  cblas_dsyrk(CblasRowMajor, CblasUpper, right ? CblasTrans : CblasNoTrans, static_cast<int>(small),
              static_cast<int>(other), 1.0, res.data(), static_cast<int>(cols), 0.0, gram.data(),
              static_cast<int>(small));
  std::vector<double> lambda, vec;  // [rank], [rank, small]
  LB_RETURN_IF_ERROR(top_eigenpairs(gram, small, rank, &lambda, &vec).with_context("lorc"));

  std::vector<float> u(static_cast<size_t>(rows * rank), 0.0f), v(static_cast<size_t>(rank * cols), 0.0f);
  std::vector<double> t(static_cast<size_t>(other));  // R v_j [rows], or Rᵀ u_j [cols]
  for (int64_t j = 0; j < rank; ++j) {
    const double* e = vec.data() + j * small;
    cblas_dgemv(CblasRowMajor, right ? CblasNoTrans : CblasTrans, static_cast<int>(rows), static_cast<int>(cols), 1.0,
                res.data(), static_cast<int>(cols), e, 1, 0.0, t.data(), 1);
    const double sigma = cblas_dnrm2(static_cast<int>(other), t.data(), 1);
    if (!(sigma > 0.0)) continue;  // R has rank < j + 1: this direction adds nothing
    const double root = std::sqrt(sigma);
    for (int64_t i = 0; i < other; ++i) {
      const float scaled = static_cast<float>(t[i] / root);
      if (right) u[i * rank + j] = scaled; else v[j * cols + i] = scaled;
    }
    for (int64_t i = 0; i < small; ++i) {
      const float scaled = static_cast<float>(e[i] * root);
      if (right) v[j * cols + i] = scaled; else u[i * rank + j] = scaled;
    }
  }
  LB_ASSIGN_OR_RETURN(QuantizedTensor qu, quantize_matrix(factor_format, u.data(), rows, rank));
  LB_ASSIGN_OR_RETURN(QuantizedTensor qv, quantize_matrix(factor_format, v.data(), rank, cols));
  q.rank = rank;
  q.lowrank_format = factor_format;
  q.lowrank_u = std::move(qu);
  q.lowrank_v = std::move(qv);
  return Status::ok_status();
}

}  // namespace lowbit
