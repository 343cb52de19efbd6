#include "kernels/approx_gemm.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <vector>

#include "kernels/lmul.h"

namespace lowbit {
namespace {

constexpr int kLanes = 16;

// The lanes' fixed reduction: j + 8, then j + 4, j + 2, then 0 + 1.
float reduce_lanes(std::array<float, kLanes> l) {
  for (int half = kLanes / 2; half >= 1; half /= 2) {
    for (int j = 0; j < half; ++j) l[j] += l[j + half];
  }
  return l[0];
}

template <typename Product>
float dot_in_lanes(const uint32_t* a, const uint32_t* b, int64_t k, Product product) {
  std::array<float, kLanes> lanes{};
  for (int64_t i = 0; i < k; ++i) lanes[i % kLanes] += product(a[i], b[i]);
  return reduce_lanes(lanes);
}

bool row_finite(const uint32_t* x, int64_t k) {
  for (int64_t i = 0; i < k; ++i) {
    if ((x[i] & 0x7F800000u) == 0x7F800000u) return false;
  }
  return true;
}

}  // namespace

const char* approx_product_name(ApproxProduct product) {
  return product == ApproxProduct::kLmul ? "lmul" : "fp8_e4m3";
}

void approx_round_rows(const ApproxArith& arith, const float* x, int64_t rows, int64_t k, int64_t ldx, uint32_t* out,
                       ThreadPool* pool) {
  auto round_range = [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * ldx;
      uint32_t* o = out + r * k;
      if (arith.product == ApproxProduct::kLmul) {
        for (int64_t i = 0; i < k; ++i) o[i] = std::bit_cast<uint32_t>(lmul_round_operand(xr[i], arith.lmul_mantissa));
      } else {
        for (int64_t i = 0; i < k; ++i) o[i] = std::bit_cast<uint32_t>(round_to_e4m3(xr[i]));
      }
    }
  };
  if (pool != nullptr && rows > 1) {
    pool->parallel_for(rows, round_range);
  } else {
    round_range(0, rows, 0);
  }
}

float lmul_dot_reference(const uint32_t* a, const uint32_t* b, int64_t k, int m) {
  return dot_in_lanes(a, b, k, [m](uint32_t x, uint32_t y) { return std::bit_cast<float>(lmul_bits(x, y, m)); });
}

float fp8_dot_reference(const uint32_t* a, const uint32_t* b, int64_t k, int) {
  // E4M3 times E4M3 is exact in FP32: the only rounding is the sum's.
  return dot_in_lanes(a, b, k, [](uint32_t x, uint32_t y) { return std::bit_cast<float>(x) * std::bit_cast<float>(y); });
}

std::span<const ApproxDotKernel> approx_dot_kernels() {
  static const std::vector<ApproxDotKernel> table = {
      {"lmul/generic", ApproxProduct::kLmul, Isa::kGeneric, &lmul_dot_reference},
      {"fp8_e4m3/generic", ApproxProduct::kFp8E4m3, Isa::kGeneric, &fp8_dot_reference},
#ifdef LOWBIT_ARCH_X86
      {"lmul/avx2", ApproxProduct::kLmul, Isa::kAvx2, lmul_dot_avx2()},
      {"lmul/avx512", ApproxProduct::kLmul, Isa::kAvx512, lmul_dot_avx512()},
      {"fp8_e4m3/avx2", ApproxProduct::kFp8E4m3, Isa::kAvx2, fp8_dot_avx2()},
      {"fp8_e4m3/avx512", ApproxProduct::kFp8E4m3, Isa::kAvx512, fp8_dot_avx512()},
#endif
  };
  return table;
}

const ApproxDotKernel& find_approx_dot_kernel(ApproxProduct product, Isa isa) {
  const ApproxDotKernel* best = nullptr;
  for (const ApproxDotKernel& k : approx_dot_kernels()) {
    if (k.product != product || k.dot == nullptr || !isa_includes(isa, k.isa)) continue;
    if (best == nullptr || k.isa > best->isa) best = &k;
  }
  return *best;  // the generic row always qualifies
}

void approx_gemm(const ApproxArith& arith, const ApproxRows& a, const ApproxRows& b, float* c, int64_t ldc,
                 float alpha, Isa isa, ThreadPool* pool) {
  const ApproxDotFn fast = find_approx_dot_kernel(arith.product, isa).dot;
  const ApproxDotFn reference = find_approx_dot_kernel(arith.product, Isa::kGeneric).dot;
  const int m = arith.lmul_mantissa;
  std::vector<uint8_t> a_finite(static_cast<size_t>(a.rows));  // [a.rows]
  for (int64_t i = 0; i < a.rows; ++i) a_finite[i] = row_finite(a.row(i), a.k);
  // Columns j in blocks whose rows of b stay in L2 while every row of a passes.
  constexpr int64_t kColBlock = 32;
  auto run = [&](int64_t j0, int64_t j1, int) {
    std::array<uint8_t, kColBlock> b_finite{};
    for (int64_t jb = j0; jb < j1; jb += kColBlock) {
      const int64_t je = std::min(j1, jb + kColBlock);
      for (int64_t j = jb; j < je; ++j) b_finite[j - jb] = row_finite(b.row(j), b.k);
      for (int64_t i = 0; i < a.rows; ++i) {
        float* ci = c + i * ldc;
        for (int64_t j = jb; j < je; ++j) {
          const ApproxDotFn dot = a_finite[i] && b_finite[j - jb] ? fast : reference;
          ci[j] = alpha * dot(a.row(i), b.row(j), a.k, m);
        }
      }
    }
  };
  if (pool != nullptr && b.rows > kColBlock) {
    pool->parallel_for(b.rows, run);
  } else {
    run(0, b.rows, 0);
  }
}

}  // namespace lowbit
