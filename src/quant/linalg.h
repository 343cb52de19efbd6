// Dense symmetric linear algebra in double for the quantizers, on OpenBLAS's
// LAPACK (Fortran symbols declared in linalg.cpp; there is no LAPACKE header).
// Matrices are row-major; symmetric inputs may be given in full.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace lowbit {

// GPTQ's factor: for symmetric positive definite H [n, n], overwrites h with the
// upper triangular U such that Uᵀ U = H⁻¹ (the strict lower triangle zeroed):
// H = L Lᵀ (dpotrf), H⁻¹ from it (dpotri), then H⁻¹'s Cholesky factor (dpotrf).
// The reference implementation's torch.linalg.cholesky(cholesky_inverse(
// cholesky(H)), upper=True). Fails when H is not positive definite.
Status inverse_cholesky_upper(std::vector<double>& h, int64_t n);

// The k largest eigenvalues of symmetric A [n, n] (descending) and their unit
// eigenvectors as rows of vectors [k, n] (dsyevr). A is destroyed.
Status top_eigenpairs(std::vector<double>& a, int64_t n, int64_t k, std::vector<double>* values,
                      std::vector<double>* vectors);

}  // namespace lowbit
