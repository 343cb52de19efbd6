// linalg.h on LAPACK. The Fortran routines take every argument by pointer and,
// with gfortran, the lengths of character arguments as trailing size_t values.
#include "quant/linalg.h"

#include <algorithm>
#include <cstddef>

extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void dsyevr_(const char* jobz, const char* range, const char* uplo, const int* n, double* a, const int* lda,
             const double* vl, const double* vu, const int* il, const int* iu, const double* abstol, int* m,
             double* w, double* z, const int* ldz, int* isuppz, double* work, const int* lwork, int* iwork,
             const int* liwork, int* info, size_t jobz_len, size_t range_len, size_t uplo_len);
}

namespace lowbit {

Status inverse_cholesky_upper(std::vector<double>& h, int64_t n) {
  if (n < 1 || static_cast<int64_t>(h.size()) != n * n) return make_error("inverse Cholesky: bad shape n = {}", n);
  const int ni = static_cast<int>(n);
  int info = 0;
  // Column-major 'L' on row-major memory: the symmetric input reads the same,
  // and the lower factor L read row-major is Lᵀ.
  dpotrf_("L", &ni, h.data(), &ni, &info, 1);
  if (info != 0) {
    return make_error("Hessian is not positive definite (Cholesky failed at column {}); raise the damping", info);
  }
  dpotri_("L", &ni, h.data(), &ni, &info, 1);
  if (info != 0) return make_error("Hessian inverse failed (LAPACK dpotri info {})", info);
  // Column-major lower triangle = row-major upper: mirror it to the other half.
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i + 1; j < n; ++j) h[j * n + i] = h[i * n + j];
  }
  // H⁻¹ = L Lᵀ in column-major terms; read row-major, L is the upper U with Uᵀ U = H⁻¹.
  dpotrf_("L", &ni, h.data(), &ni, &info, 1);
  if (info != 0) return make_error("inverse Hessian is not positive definite (Cholesky failed at column {})", info);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < i; ++j) h[i * n + j] = 0.0;
  }
  return Status::ok_status();
}

Status top_eigenpairs(std::vector<double>& a, int64_t n, int64_t k, std::vector<double>* values,
                      std::vector<double>* vectors) {
  if (n < 1 || k < 1 || k > n || static_cast<int64_t>(a.size()) != n * n) {
    return make_error("eigenpairs: bad shape n = {}, k = {}", n, k);
  }
  const int ni = static_cast<int>(n);
  const int il = static_cast<int>(n - k + 1), iu = ni;
  const double vl = 0.0, vu = 0.0, abstol = 0.0;
  int m = 0, info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0.0;
  std::vector<double> w(static_cast<size_t>(n)), z(static_cast<size_t>(n * k));
  std::vector<int> isuppz(static_cast<size_t>(2 * k));
  dsyevr_("V", "I", "L", &ni, a.data(), &ni, &vl, &vu, &il, &iu, &abstol, &m, w.data(), z.data(), &ni, isuppz.data(),
          &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1, 1);
  if (info != 0) return make_error("eigenpairs: LAPACK dsyevr workspace query failed (info {})", info);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(static_cast<size_t>(std::max(lwork, 1)));
  std::vector<int> iwork(static_cast<size_t>(std::max(liwork, 1)));
  dsyevr_("V", "I", "L", &ni, a.data(), &ni, &vl, &vu, &il, &iu, &abstol, &m, w.data(), z.data(), &ni, isuppz.data(),
          work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1, 1);
  if (info != 0 || m != k) return make_error("eigenpairs: LAPACK dsyevr failed (info {}, {} of {} found)", info, m, k);
  // Ascending from dsyevr; column j of z (column-major, ld n) is eigenvector j.
  values->resize(static_cast<size_t>(k));
  vectors->resize(static_cast<size_t>(k * n));
  for (int64_t j = 0; j < k; ++j) {
    const int64_t src = k - 1 - j;
    (*values)[j] = w[src];
    std::copy(z.begin() + src * n, z.begin() + (src + 1) * n, vectors->begin() + j * n);
  }
  return Status::ok_status();
}

}  // namespace lowbit
