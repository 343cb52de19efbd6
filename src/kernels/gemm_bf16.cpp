#include "kernels/gemm_bf16.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace lowbit {

uint16_t bf16_from_float(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t exponent = bits & 0x7f800000u;
  if (exponent == 0) return static_cast<uint16_t>((bits >> 16) & 0x8000u);  // zero or subnormal: signed zero
  if (exponent == 0x7f800000u) {
    // Infinity keeps its bits; a NaN keeps its sign and top payload, made quiet.
    const bool nan = (bits & 0x007fffffu) != 0;
    return static_cast<uint16_t>((bits >> 16) | (nan ? 0x0040u : 0u));
  }
  const uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);  // ties to even
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

float float_from_bf16(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

namespace {

uint32_t pair_of(float lo, float hi) {
  return static_cast<uint32_t>(bf16_from_float(lo)) | (static_cast<uint32_t>(bf16_from_float(hi)) << 16);
}

// One row of k floats into ceil(k/2) pairs (an odd k ends with a zero high half).
void round_row(const float* x, int64_t k, uint32_t* out, Bf16RoundFn fast) {
  const int64_t even = k & ~int64_t{1};
  int64_t done = 0;
  if (fast != nullptr) {
    fast(x, even, out);
    done = even;
  }
  for (int64_t i = done; i < even; i += 2) out[i / 2] = pair_of(x[i], x[i + 1]);
  if (k & 1) out[k / 2] = pair_of(x[k - 1], 0.0f);
}

Bf16RoundFn round_fn_for(Isa isa) {
#ifdef LOWBIT_ARCH_X86
  if (isa >= Isa::kAvx512Bf16) return bf16_round_avx512bf16();
#endif
  return nullptr;
}

// Values below FLT_MIN become zero of their sign (VDPBF16PS flushes its results).
float flush_subnormal(float v) { return std::fabs(v) < 1.17549435e-38f ? std::copysign(0.0f, v) : v; }

}  // namespace

void pack_bf16_panels_from_rows(const float* b, int64_t n, int64_t k, int64_t ldb, Bf16Panels& out) {
  out.n = n;
  out.pairs = (k + 1) / 2;
  out.data.assign(static_cast<size_t>(out.n_panels() * out.pairs * kBf16PanelCols), 0u);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t* col = out.data.data() + (i / kBf16PanelCols) * out.pairs * kBf16PanelCols + i % kBf16PanelCols;
    const float* row = b + i * ldb;
    for (int64_t p = 0; p < k / 2; ++p) col[p * kBf16PanelCols] = pair_of(row[2 * p], row[2 * p + 1]);
    if (k & 1) col[(k / 2) * kBf16PanelCols] = pair_of(row[k - 1], 0.0f);
  }
}

void pack_bf16_panels_from_columns(const float* b, int64_t k, int64_t n, int64_t ldb, Bf16Panels& out, Isa isa,
                                   ThreadPool* pool) {
  out.n = n;
  out.pairs = (k + 1) / 2;
  const int64_t padded = out.n_panels() * kBf16PanelCols;
  // Every element, padding included, is written below: no zero fill of a reused buffer.
  out.data.resize(static_cast<size_t>(padded * out.pairs));
  Bf16InterleaveFn fast = nullptr;
#ifdef LOWBIT_ARCH_X86
  if (isa >= Isa::kAvx512Bf16) fast = bf16_interleave_avx512bf16();
#endif
  const int64_t fast_cols = fast != nullptr ? n / 16 * 16 : 0;
  auto pack_pairs = [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* lo = b + 2 * p * ldb;
      const float* hi = 2 * p + 1 < k ? lo + ldb : nullptr;
      if (fast_cols > 0) fast(lo, hi, fast_cols, out.pairs, p, out.data.data());
      for (int64_t i = fast_cols; i < padded; ++i) {
        out.data[static_cast<size_t>((i / kBf16PanelCols) * out.pairs * kBf16PanelCols + p * kBf16PanelCols +
                                     i % kBf16PanelCols)] =
            i < n ? pair_of(lo[i], hi != nullptr ? hi[i] : 0.0f) : 0u;
      }
    }
  };
  if (pool == nullptr || pool->size() <= 1) {
    pack_pairs(0, out.pairs);
  } else {
    pool->parallel_for(out.pairs, [&](int64_t p0, int64_t p1, int) { pack_pairs(p0, p1); });
  }
}

Bf16Rows round_rows_bf16(const float* x, int64_t rows, int64_t k, int64_t ldx, std::vector<uint32_t>& out, Isa isa) {
  const int64_t pairs = (k + 1) / 2;
  if (out.size() < static_cast<size_t>(rows * pairs)) out.resize(static_cast<size_t>(rows * pairs));
  round_rows_bf16_to(x, rows, k, ldx, out.data(), isa);
  return Bf16Rows{.rows = rows, .pairs = pairs, .row_stride = pairs, .pair_stride = 1, .data = out.data()};
}

void round_rows_bf16_to(const float* x, int64_t rows, int64_t k, int64_t ldx, uint32_t* out, Isa isa,
                        ThreadPool* pool) {
  const int64_t pairs = (k + 1) / 2;
  const Bf16RoundFn fast = round_fn_for(isa);
  auto round_range = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) round_row(x + r * ldx, k, out + r * pairs, fast);
  };
  if (pool == nullptr || pool->size() <= 1) {
    round_range(0, rows);
  } else {
    pool->parallel_for(rows, [&](int64_t r0, int64_t r1, int) { round_range(r0, r1); });
  }
}

Bf16Rows panels_as_rows(const Bf16Panels& panels) {
  return Bf16Rows{.rows = panels.n,
                  .pairs = panels.pairs,
                  .row_stride = 1,
                  .pair_stride = kBf16PanelCols,
                  .group = kBf16PanelCols,
                  .group_stride = panels.pairs * kBf16PanelCols,
                  .data = panels.data.data()};
}

void bf16_micro_kernel_reference(const uint32_t* a, int64_t a_row_stride, int64_t a_pair_stride,
                                 const uint32_t* panel, int64_t pairs, float* c, int64_t ldc, int rows, int cols,
                                 float alpha, bool accumulate) {
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < cols; ++j) {
      float acc = 0.0f;
      for (int64_t p = 0; p < pairs; ++p) {
        const uint32_t x = a[r * a_row_stride + p * a_pair_stride], w = panel[p * kBf16PanelCols + j];
        // Flushing the operands' subnormals is already done by the rounding (bf16_from_float).
        acc = flush_subnormal(acc + float_from_bf16(static_cast<uint16_t>(x >> 16)) *
                                        float_from_bf16(static_cast<uint16_t>(w >> 16)));
        acc = flush_subnormal(acc + float_from_bf16(static_cast<uint16_t>(x & 0xffffu)) *
                                        float_from_bf16(static_cast<uint16_t>(w & 0xffffu)));
      }
      float& out = c[r * ldc + j];
      out = accumulate ? out + alpha * acc : alpha * acc;
    }
  }
}

Bf16MicroKernel bf16_micro_kernel_for(Isa isa) {
#ifdef LOWBIT_ARCH_X86
  if (isa >= Isa::kAvx512Bf16) {
    if (Bf16MicroKernel k = bf16_micro_kernel_avx512bf16()) return k;
  }
#endif
  return bf16_micro_kernel_reference;
}

void gemm_bf16(const Bf16Rows& a, const Bf16Panels& b, float* c, int64_t ldc, const Bf16GemmRange& range, Isa isa,
               ThreadPool* pool) {
  const int64_t n_cols = range.cols < 0 ? b.n : std::min(range.cols, b.n);
  const int64_t n_panels = (n_cols + kBf16PanelCols - 1) / kBf16PanelCols;
  const Bf16MicroKernel kernel = bf16_micro_kernel_for(isa);
  // Panels dealt to `step` threads in rounds, the order reversed every other round
  // (thread t takes t, 2·step-1-t, 2·step+t, ...): under upper_only panel j holds about
  // j row blocks, so contiguous ranges would give the last thread most of the triangle,
  // and plain round-robin the last thread one row block more per round (10% more work
  // for 18 panels on 2 threads).
  auto run_panels = [&](int64_t first, int64_t step) {
    for (int64_t round = 0; round * step < n_panels; ++round) {
      const int64_t j = round * step + (round % 2 == 0 ? first : step - 1 - first);
      if (j >= n_panels) continue;
      const int64_t col0 = j * kBf16PanelCols;
      const int cols = static_cast<int>(std::min<int64_t>(kBf16PanelCols, n_cols - col0));
      for (int64_t r0 = 0; r0 < a.rows; r0 += kBf16MicroRows) {
        if (range.upper_only && col0 + cols <= r0) break;  // this block and every later one lie below the diagonal
        const int rows = static_cast<int>(std::min<int64_t>(kBf16MicroRows, a.rows - r0));
        kernel(a.row(r0), a.row_stride, a.pair_stride, b.panel(j), a.pairs, c + r0 * ldc + col0, ldc, rows, cols,
               range.alpha, range.accumulate);
      }
    }
  };
  const int threads = pool != nullptr ? pool->size() : 1;
  if (threads <= 1 || n_panels <= 1) {
    run_panels(0, 1);
    return;
  }
  pool->parallel_for(threads, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) run_panels(t, threads);
  });
}

}  // namespace lowbit
