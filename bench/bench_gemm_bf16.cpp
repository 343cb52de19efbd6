// Google Benchmark for the BF16 calibration products (kernels/gemm_bf16.h) beside
// FP32 sgemm (OpenBLAS) of the same shape, at SmolLM2-135M's calibration shapes
// (2048-token windows), one thread. The BF16 iteration includes rounding the
// activations to BF16 pairs (the weights' panels are built once, as a layer does).
// Run: build/lowbit_bench_kernels --benchmark_filter=CalibGemm
// args: kind (0 sgemm FP32, 1 BF16 AVX512_BF16, 2 BF16 XᵀX upper triangle, 3 FP32 ssyrk), tokens, out, in.
// Counter GFLOPs: 2·tokens·out·in per iteration (XᵀX: tokens·in², the upper half).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>
#include <vector>

#include "core/blas_threads.h"
#include "kernels/gemm_bf16.h"

namespace lowbit {
namespace {

void BM_CalibGemm(benchmark::State& state) {
  const int64_t kind = state.range(0), tokens = state.range(1), out = state.range(2), in = state.range(3);
  if (kind == 1 || kind == 2) {
    if (!isa_supported(Isa::kAvx512Bf16, detect_cpu_features())) {
      state.SkipWithError("no AVX512_BF16 on this CPU");
      return;
    }
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(tokens * in)), w(static_cast<size_t>(out * in));
  for (float& v : x) v = d(rng);
  for (float& v : w) v = d(rng);
  std::vector<float> y(static_cast<size_t>(tokens * (kind >= 2 ? in : out)));
  const SingleThreadedBlas one_thread;
  Bf16Panels panels;
  pack_bf16_panels_from_rows(w.data(), out, in, in, panels);
  std::vector<uint32_t> rows_buf;
  for (auto _ : state) {
    switch (kind) {
      case 0:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(tokens), static_cast<int>(out),
                    static_cast<int>(in), 1.0f, x.data(), static_cast<int>(in), w.data(), static_cast<int>(in), 0.0f,
                    y.data(), static_cast<int>(out));
        break;
      case 1: {
        const Bf16Rows a = round_rows_bf16(x.data(), tokens, in, in, rows_buf, Isa::kAvx512Bf16);
        gemm_bf16(a, panels, y.data(), out, {}, Isa::kAvx512Bf16, nullptr);
        break;
      }
      case 2: {
        Bf16Panels xp;
        pack_bf16_panels_from_columns(x.data(), tokens, in, in, xp, Isa::kAvx512Bf16);
        gemm_bf16(panels_as_rows(xp), xp, y.data(), in, {.upper_only = true}, Isa::kAvx512Bf16, nullptr);
        break;
      }
      default:
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(in), static_cast<int>(tokens), 1.0f,
                    x.data(), static_cast<int>(in), 0.0f, y.data(), static_cast<int>(in));
        break;
    }
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = kind >= 2 ? static_cast<double>(tokens) * in * in : 2.0 * tokens * out * in;
  state.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_CalibGemm)
    ->ArgsProduct({{0, 1}, {2048}, {576, 1536}, {576}})
    ->Args({0, 2048, 576, 1536})
    ->Args({1, 2048, 576, 1536})
    ->ArgsProduct({{2, 3}, {2048}, {0}, {576, 1536}})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lowbit
