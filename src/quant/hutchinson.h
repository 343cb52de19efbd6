// Hutchinson's stochastic trace estimator (Hutchinson 1989), which HAWQ-V2
// uses for the trace of each layer's Hessian from Hessian-vector products alone:
//
//   tr(A) = E[vᵀ A v]   for v [n] with independent Rademacher entries (±1, p = ½),
//
// because E[v_i v_j] = δ_ij. For symmetric A the diagonal contributes
// Σ A_ii v_i² = tr(A) exactly, and only the off-diagonal part varies:
//
//   Var[vᵀ A v] = 2 Σ_{i≠j} A_ij² = 2 (‖A‖_F² − Σ_i A_ii²),
//
// so a diagonal A gives the exact trace from one probe, and the mean of p
// probes has standard error sqrt(2 (‖A‖_F² − Σ A_ii²) / p).
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "core/status.h"

namespace lowbit {

struct TraceEstimate {
  double mean = 0;  // (1/p) Σ_k v_kᵀ A v_k
  // sqrt(s² / p) with s² = Σ_k (q_k − mean)² / (p − 1), the sample variance of
  // the probes q_k; 0 for a single probe (unknown, as RunningMean reports it).
  // Named so, not `stderr`, because <cstdio> may define stderr as a macro.
  double stderr_of_mean = 0;
  int probes = 0;
};

// Returns vᵀ A v for one probe v [n] (entries exactly ±1.0f).
using QuadraticForm = std::function<Expected<double>(const std::vector<float>& v)>;

// Averages quad_form over `probes` Rademacher vectors of length n drawn
// deterministically from std::mt19937_64(seed): entry i of a probe is bit
// (i mod 64) of the probe's (i / 64)-th draw, +1 where the bit is set, −1 where
// not; each probe starts a new draw. Errors: n < 1, probes < 1, an error of
// quad_form (with the probe number in front), or a value that is not finite.
// v [n] ← the next Rademacher vector of rng: entry i is bit (i mod 64) of the
// (i / 64)-th draw, 1 → +1, 0 → −1 (the probes hutchinson_trace passes).
void fill_rademacher(std::mt19937_64& rng, std::vector<float>& v);

Expected<TraceEstimate> hutchinson_trace(int64_t n, int probes, uint64_t seed, const QuadraticForm& quad_form);

}  // namespace lowbit
