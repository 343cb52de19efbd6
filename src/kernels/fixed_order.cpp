#include "kernels/fixed_order.h"

#include <cmath>
#include <limits>

namespace lowbit {

float fixed_order_dot(const float* a, const float* b, int64_t n) {
  float lane[kFixedOrderLanes] = {};
  int64_t k = 0;
  for (; k + kFixedOrderLanes <= n; k += kFixedOrderLanes) {
    for (int j = 0; j < kFixedOrderLanes; ++j) {
      const float p = a[k + j] * b[k + j];
      lane[j] = lane[j] + p;
    }
  }
  if (k < n) {
    for (int j = 0; j < kFixedOrderLanes; ++j) {
      const float p = k + j < n ? a[k + j] * b[k + j] : 0.0f;  // +0 padding, as the SIMD variants load it
      lane[j] = lane[j] + p;
    }
  }
  float s8[8], s4[4];
  for (int j = 0; j < 8; ++j) s8[j] = lane[j] + lane[j + 8];
  for (int j = 0; j < 4; ++j) s4[j] = s8[j] + s8[j + 4];
  const float s2_0 = s4[0] + s4[2], s2_1 = s4[1] + s4[3];
  return s2_0 + s2_1;
}

namespace {

void rows_generic(const float* w, int64_t in, int64_t r0, int64_t r1, const float* x, int64_t n_tokens, float* y,
                  int64_t y_stride) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = 0; t < n_tokens; ++t) y[t * y_stride + r] = fixed_order_dot(x + t * in, w + r * in, in);
  }
}

}  // namespace

FixedOrderKernels fixed_order_kernels_generic() { return {rows_generic, "fixed-order/generic"}; }

FixedOrderKernels fixed_order_kernels(Isa isa) {
#ifdef LOWBIT_ARCH_X86
  if (isa >= Isa::kAvx512) return fixed_order_kernels_avx512();
  if (isa >= Isa::kAvx2) return fixed_order_kernels_avx2();  // avx2 and avxvnni
#endif
  return fixed_order_kernels_generic();
}

double fixed_order_exp(double x) {
  if (std::isnan(x)) return x;
  if (x < -745.2) return 0.0;
  if (x > 709.78) return std::numeric_limits<double>::infinity();
  constexpr double kLog2e = 1.4426950408889634074;
  // ln 2 = kLn2Hi + kLn2Lo to ~2⁻⁸⁴: kLn2Hi the leading 32 significant bits (n·kLn2Hi
  // exact for |n| ≤ 1075), kLn2Lo = 1.90821492927058770e-10 the next 53.
  constexpr double kLn2Hi = 0x1.62e42feep-1;
  constexpr double kLn2Lo = 0x1.a39ef35793c76p-33;
  const double n = std::nearbyint(x * kLog2e);
  const double r = (x - n * kLn2Hi) - n * kLn2Lo;
  // Horner for Σ_{i=0}^{13} r^i / i!.
  constexpr double kInvFact[14] = {1.0,
                                   1.0,
                                   1.0 / 2,
                                   1.0 / 6,
                                   1.0 / 24,
                                   1.0 / 120,
                                   1.0 / 720,
                                   1.0 / 5040,
                                   1.0 / 40320,
                                   1.0 / 362880,
                                   1.0 / 3628800,
                                   1.0 / 39916800,
                                   1.0 / 479001600,
                                   1.0 / 6227020800.0};
  double p = kInvFact[13];
  for (int i = 12; i >= 0; --i) p = p * r + kInvFact[i];
  return std::ldexp(p, static_cast<int>(n));
}

void fixed_order_softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(fixed_order_exp(static_cast<double>(x[i]) - static_cast<double>(m)));
    sum += static_cast<double>(x[i]);
  }
  const double inv = 1.0 / sum;
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(static_cast<double>(x[i]) * inv);
}

void fixed_order_swiglu(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    gate[i] = static_cast<float>(g / (1.0 + fixed_order_exp(-g)) * static_cast<double>(up[i]));
  }
}

}  // namespace lowbit
