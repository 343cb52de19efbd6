// Orthogonal rotations x ← x·Q of row vectors, for QuaRot-style rotation of a
// model (pipeline/rotation.h), online transforms at run time
// (model/online_hadamard_linear.h) and KV-cache rotation.
//
// Q is, in order of preference:
//   - a randomized Hadamard matrix Q = H_n·diag(s) / sqrt(n) with signs s_j = ±1
//     drawn from a seed (QuaRot, Ashkboos et al. 2024, section 3: random signs
//     make the rotation incoherent with the weights), or the plain H_n / sqrt(n)
//     when signs are off; applied in O(n log n + n·m) (hadamard.h);
//   - when n has no known Hadamard matrix (n ≠ 2^k·m, hadamard.h), a seeded random
//     orthogonal matrix (Haar distributed: Householder QR of a Gaussian matrix,
//     in double), applied densely in O(n²) per row. note() says so, for the
//     caller to print.
// The same (n, seed, signs) always gives the same Q, on every platform: the
// random numbers come from splitmix64 and Box-Muller, not from <random>'s
// implementation-defined distributions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

// A seeded random orthogonal matrix [n, n] row-major (double): Q from the QR
// factorisation of an n×n standard Gaussian matrix, columns multiplied by
// sign(R_jj) so that Q is Haar distributed (Mezzadri 2007). O(n³).
std::vector<double> random_orthogonal_matrix(int64_t n, uint64_t seed);

// n signs ±1 from a seed (splitmix64 bits).
std::vector<float> random_signs(int64_t n, uint64_t seed);

class Rotation {
 public:
  enum class Kind { kHadamard, kRandomOrthogonal };

  Rotation() = default;
  // Q of order n (n ≥ 1): Hadamard (times random signs from `seed` when
  // random_signs) when n is supported, else a random orthogonal matrix from `seed`.
  static Rotation create(int64_t n, uint64_t seed, bool random_signs);

  int64_t size() const { return n_; }
  Kind kind() const { return kind_; }
  // "hadamard 576 = 16·36, random signs", "random orthogonal 172 (no known Hadamard matrix)".
  std::string describe() const;
  // Empty for a Hadamard rotation; otherwise one line saying that no Hadamard
  // matrix of this order is known and a dense random orthogonal matrix is used.
  const std::string& note() const { return note_; }

  // x: [rows, n] in place, x ← x·Q. Reentrant (const, no shared buffers).
  void apply(float* x, int64_t rows) const;
  // x ← x·Qᵀ (the inverse of apply).
  void apply_transpose(float* x, int64_t rows) const;
  // The dense Q [n, n] row-major, for tests and references.
  std::vector<double> matrix() const;

 private:
  int64_t n_ = 0;
  Kind kind_ = Kind::kHadamard;
  std::vector<float> signs_;  // [n] or empty (plain Hadamard)
  std::vector<float> dense_;  // [n, n] Q for kRandomOrthogonal
  std::string note_;
};

}  // namespace lowbit
