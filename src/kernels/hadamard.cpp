#include "kernels/hadamard.h"

#include <array>
#include <cmath>

#include <fmt/format.h>

#include "kernels/hadamard_row_kernels.h"

namespace lowbit {
namespace {

constexpr int kMaxBase = 60;

// GF(q) for q = p (degree 1) or q = p² (degree 2, GF(p)[t]/(t² − r), r a
// non-residue mod p). Element a + b·t has index a + p·b.
struct SmallField {
  int p = 0;
  int degree = 1;
  int r = 0;

  int q() const { return degree == 1 ? p : p * p; }
  int sub(int x, int y) const {
    const int a = ((x % p) - (y % p) + p) % p;
    const int b = ((x / p) - (y / p) + p) % p;
    return a + p * b;
  }
  int square(int x) const {
    const int a = x % p, b = x / p;
    return (a * a + r * b * b) % p + p * ((2 * a * b) % p);
  }
};

// χ(x) for every element: 0 at 0, +1 on non-zero squares, −1 elsewhere.
std::vector<int> quadratic_character(const SmallField& f) {
  std::vector<int> chi(static_cast<size_t>(f.q()), -1);
  for (int x = 1; x < f.q(); ++x) chi[static_cast<size_t>(f.square(x))] = 1;
  chi[0] = 0;
  return chi;
}

// Conference-style core [q+1, q+1]: row/column 0 bordered with first_col (−1 for
// Paley I, +1 for Paley II) and 1s, the rest the Jacobsthal matrix χ(x_b − x_a).
std::vector<int> bordered_jacobsthal(const SmallField& f, int first_col) {
  const int q = f.q(), n = q + 1;
  const std::vector<int> chi = quadratic_character(f);
  std::vector<int> s(static_cast<size_t>(n * n), 0);
  for (int j = 1; j < n; ++j) s[static_cast<size_t>(j)] = 1;
  for (int i = 1; i < n; ++i) {
    s[static_cast<size_t>(i * n)] = first_col;
    for (int j = 1; j < n; ++j) s[static_cast<size_t>(i * n + j)] = chi[static_cast<size_t>(f.sub(j - 1, i - 1))];
  }
  return s;
}

// Paley I, q ≡ 3 (mod 4): H = I + S, order q + 1.
std::vector<int8_t> paley1(const SmallField& f) {
  const int n = f.q() + 1;
  const std::vector<int> s = bordered_jacobsthal(f, -1);
  std::vector<int8_t> h(static_cast<size_t>(n * n));
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const auto at = static_cast<size_t>(i * n + j);
      h[at] = static_cast<int8_t>(s[at] + (i == j));
    }
  }
  return h;
}

// Paley II, q ≡ 1 (mod 4): C ⊗ [[1, 1], [1, −1]] + I ⊗ [[1, −1], [−1, −1]], order 2(q + 1).
std::vector<int8_t> paley2(const SmallField& f) {
  const int c = f.q() + 1, n = 2 * c;
  const std::vector<int> s = bordered_jacobsthal(f, 1);
  constexpr int kOff[2][2] = {{1, 1}, {1, -1}};
  constexpr int kDiag[2][2] = {{1, -1}, {-1, -1}};
  std::vector<int8_t> h(static_cast<size_t>(n * n));
  for (int i = 0; i < c; ++i) {
    for (int j = 0; j < c; ++j) {
      const int cij = s[static_cast<size_t>(i * c + j)];
      for (int u = 0; u < 2; ++u) {
        for (int v = 0; v < 2; ++v) {
          const int value = i == j ? kDiag[u][v] : cij * kOff[u][v];
          h[static_cast<size_t>((2 * i + u) * n + 2 * j + v)] = static_cast<int8_t>(value);
        }
      }
    }
  }
  return h;
}

std::vector<int8_t> build_base(int m) {
  switch (m) {
    case 1: return {1};
    case 12: return paley1({11});
    case 20: return paley1({19});
    case 28: return paley2({13});
    case 36: return paley2({17});
    case 44: return paley1({43});
    case 52: return paley2({5, 2, 2});  // GF(25): 2 is not a square mod 5
    case 60: return paley1({59});
    default: return {};
  }
}

// The base matrices as floats, built once (immutable afterwards; C++ guarantees a
// thread-safe initialisation of function-local statics).
struct BaseTable {
  std::array<std::vector<float>, kMaxBase + 1> h;   // [m, m]
  std::array<std::vector<float>, kMaxBase + 1> ht;  // [m, m] transposed
};

const BaseTable& base_table() {
  static const BaseTable table = [] {
    BaseTable t;
    for (int m : hadamard_base_orders()) {
      const std::vector<int8_t> b = build_base(m);
      t.h[static_cast<size_t>(m)].resize(b.size());
      t.ht[static_cast<size_t>(m)].resize(b.size());
      for (int i = 0; i < m; ++i) {
        for (int j = 0; j < m; ++j) {
          t.h[static_cast<size_t>(m)][static_cast<size_t>(i * m + j)] = b[static_cast<size_t>(i * m + j)];
          t.ht[static_cast<size_t>(m)][static_cast<size_t>(j * m + i)] = b[static_cast<size_t>(i * m + j)];
        }
      }
    }
    return t;
  }();
  return table;
}

void transform_rows(HadamardRowFn kernel, float* x, int64_t rows, int64_t n, bool transpose) {
  const std::optional<HadamardOrder> order = hadamard_order(n);
  if (!order) return;  // documented precondition; nothing sensible to do
  const BaseTable& t = base_table();
  const auto m = static_cast<size_t>(order->base);
  const float* b = transpose ? t.ht[m].data() : t.h[m].data();
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  for (int64_t r = 0; r < rows; ++r) kernel(x + r * n, order->pow2, order->base, b, scale);
}

}  // namespace

// The reference row kernel (hadamard_row_kernels.h); scalar.
void hadamard_row_generic(float* x, int64_t pow2, int m, const float* b, float scale) {
  // FWHT along the power-of-two axis, blocks of m contiguous values (m = 1: the
  // classic in-place butterfly).
  for (int64_t h = 1; h < pow2; h *= 2) {
    for (int64_t i = 0; i < pow2; i += 2 * h) {
      for (int64_t j = i; j < i + h; ++j) {
        float* u = x + j * m;
        float* v = x + (j + h) * m;
        for (int c = 0; c < m; ++c) {
          const float a = u[c];
          const float d = v[c];
          u[c] = a + d;
          v[c] = a - d;
        }
      }
    }
  }
  const int64_t n = pow2 * m;
  if (m > 1) {
    float y[kMaxBase];
    for (int64_t blk = 0; blk < pow2; ++blk) {
      float* xb = x + blk * m;
      for (int d = 0; d < m; ++d) y[d] = 0.0f;
      for (int k = 0; k < m; ++k) {
        const float xk = xb[k];
        const float* row = b + static_cast<int64_t>(k) * m;
        for (int d = 0; d < m; ++d) y[d] += xk * row[d];
      }
      for (int d = 0; d < m; ++d) xb[d] = y[d] * scale;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) x[i] *= scale;
  }
}

HadamardRowFn hadamard_row_kernel(Isa isa) {
#ifdef LOWBIT_ARCH_X86
  if (isa >= Isa::kAvx512) return hadamard_row_avx512;
  if (isa >= Isa::kAvx2) return hadamard_row_avx2;
#endif
  return hadamard_row_generic;
}

const char* hadamard_row_kernel_name(Isa isa) {
#ifdef LOWBIT_ARCH_X86
  if (isa >= Isa::kAvx512) return "hadamard/avx512";
  if (isa >= Isa::kAvx2) return "hadamard/avx2";
#endif
  return "hadamard/generic";
}

const std::vector<int>& hadamard_base_orders() {
  static const std::vector<int> orders = {1, 12, 20, 28, 36, 44, 52, 60};
  return orders;
}

std::optional<HadamardOrder> hadamard_order(int64_t n) {
  if (n <= 0) return std::nullopt;
  int64_t pow2 = 1;
  int64_t rest = n;
  while (rest % 2 == 0) rest /= 2, pow2 *= 2;
  // The base orders are 1 or 4·odd: take two factors of 2 back for a non-trivial odd part.
  if (rest == 1) return HadamardOrder{pow2, 1};
  if (pow2 < 4) return std::nullopt;
  const int64_t m = 4 * rest;
  for (int base : hadamard_base_orders()) {
    if (base == m) return HadamardOrder{pow2 / 4, base};
  }
  return std::nullopt;
}

std::string describe_hadamard_order(int64_t n) {
  const std::optional<HadamardOrder> o = hadamard_order(n);
  if (!o) return fmt::format("{}: no known Hadamard matrix", n);
  return fmt::format("{} = {}·{}", n, o->pow2, o->base);
}

std::vector<int8_t> hadamard_base_matrix(int m) {
  for (int base : hadamard_base_orders()) {
    if (base == m) return build_base(m);
  }
  return {};
}

std::vector<double> hadamard_matrix(int64_t n) {
  const std::optional<HadamardOrder> o = hadamard_order(n);
  if (!o) return {};
  const int m = o->base;
  const std::vector<int8_t> b = build_base(m);
  const double scale = 1.0 / std::sqrt(static_cast<double>(n));
  std::vector<double> h(static_cast<size_t>(n * n));
  // Sylvester entry (i, j) of H_{2^k}: (−1)^popcount(i & j).
  for (int64_t a = 0; a < o->pow2; ++a) {
    for (int64_t c = 0; c < o->pow2; ++c) {
      const double s = (__builtin_popcountll(static_cast<uint64_t>(a & c)) % 2 == 0) ? scale : -scale;
      for (int i = 0; i < m; ++i) {
        for (int j = 0; j < m; ++j) {
          h[static_cast<size_t>((a * m + i) * n + c * m + j)] = s * b[static_cast<size_t>(i * m + j)];
        }
      }
    }
  }
  return h;
}

void hadamard_rows(float* x, int64_t rows, int64_t n) { hadamard_rows_with(active_isa(), x, rows, n, false); }

void hadamard_rows_transpose(float* x, int64_t rows, int64_t n) {
  hadamard_rows_with(active_isa(), x, rows, n, true);
}

void hadamard_rows_with(Isa isa, float* x, int64_t rows, int64_t n, bool transpose) {
  transform_rows(hadamard_row_kernel(isa), x, rows, n, transpose);
}

void fwht(float* x, int n) { fwht_rows(x, 1, n); }

void fwht_rows(float* x, int64_t rows, int n) { fwht_rows_with(active_isa(), x, rows, n); }

void fwht_rows_with(Isa isa, float* x, int64_t rows, int n) {
  const HadamardRowFn kernel = hadamard_row_kernel(isa);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  for (int64_t r = 0; r < rows; ++r) kernel(x + r * n, n, 1, nullptr, scale);
}

}  // namespace lowbit
