// Google Benchmark for the FP32 building blocks of the forward pass at
// SmolLM2-135M shapes (dim 576, ffn 1536). Run: build/lowbit_bench_kernels.
#include <benchmark/benchmark.h>

#include <random>

#include "core/thread_pool.h"
#include "model/linear.h"
#include "model/ops.h"

namespace lowbit {
namespace {

Matrix random_matrix(int64_t rows, int64_t cols) {
  Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.data.resize(rows * cols);
  std::mt19937 rng(3);
  std::normal_distribution<float> n01(0.0f, 0.02f);
  for (float& x : m.data) x = n01(rng);
  return m;
}

// args: out, in, n_tokens
void BM_DenseLinear(benchmark::State& state) {
  const int64_t out = state.range(0), in = state.range(1), n = state.range(2);
  DenseLinear lin(random_matrix(out, in));
  std::vector<float> x(n * in, 0.5f), y(n * out);
  ThreadPool pool(1);
  for (auto _ : state) {
    lin.forward(x.data(), n, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * out * in * n, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.counters["GB/s"] = benchmark::Counter(4.0 * out * in, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}
BENCHMARK(BM_DenseLinear)->Args({1536, 576, 1})->Args({576, 1536, 1})->Args({1536, 576, 512})->Args({49152, 576, 1});

void BM_RmsNorm(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<float> x(n, 0.3f), w(n, 1.0f), out(n);
  for (auto _ : state) {
    rms_norm(x.data(), w.data(), n, 1e-5f, out.data());
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_RmsNorm)->Arg(576)->Arg(2048);

}  // namespace
}  // namespace lowbit
