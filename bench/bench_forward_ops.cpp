// Google Benchmark for the FP32 building blocks of the forward pass at
// SmolLM2-135M shapes (dim 576, ffn 1536). Run: build/lowbit_bench_kernels.
#include <benchmark/benchmark.h>

#include <random>

#include "core/thread_pool.h"
#include "kernels/exp_rows.h"
#include "kernels/hadamard.h"
#include "kernels/hadamard_row_kernels.h"
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

// The exp rows of one ISA level (0 generic, 1 AVX2, 2 AVX-512), skipped where the
// CPU lacks it. args: n, level. A 512-token prompt's causal score rows average
// 256 entries; an FFN hidden row is 1536 (SmolLM2) or 5632 (TinyLlama).
ExpRowOps exp_ops_for(benchmark::State& state) {
  const Isa isa = state.range(1) == 0 ? Isa::kGeneric : state.range(1) == 1 ? Isa::kAvx2 : Isa::kAvx512;
  if (!isa_supported(isa, detect_cpu_features())) state.SkipWithError("ISA level not supported by this CPU");
  return isa == Isa::kGeneric ? exp_row_ops_generic() : isa == Isa::kAvx2 ? exp_row_ops_avx2() : exp_row_ops_avx512();
}

void BM_Softmax(benchmark::State& state) {
  const ExpRowOps ops = exp_ops_for(state);
  const int64_t n = state.range(0);
  std::vector<float> x(n);
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 3.0f);
  for (float& v : x) v = d(rng);
  std::vector<float> row(n);
  for (auto _ : state) {
    row = x;
    ops.softmax(row.data(), n);
    benchmark::DoNotOptimize(row.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetLabel(ops.name);
}
BENCHMARK(BM_Softmax)->ArgsProduct({{256, 2048}, {0, 1, 2}});

void BM_Swiglu(benchmark::State& state) {
  const ExpRowOps ops = exp_ops_for(state);
  const int64_t n = state.range(0);
  std::vector<float> gate(n), up(n, 0.7f);
  std::mt19937 rng(6);
  std::normal_distribution<float> d(0.0f, 2.0f);
  for (float& v : gate) v = d(rng);
  std::vector<float> row(n);
  for (auto _ : state) {
    row = gate;
    ops.swiglu(row.data(), up.data(), n);
    benchmark::DoNotOptimize(row.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetLabel(ops.name);
}
BENCHMARK(BM_Swiglu)->ArgsProduct({{1536, 5632}, {0, 1, 2}});

// One row through the online Hadamard transform at one ISA level (args: n, level
// as above): a decode token rotates down_proj's input once per layer, 1536 =
// 128·12 (SmolLM2) or 5632 = 128·44 (TinyLlama). The row is copied in every
// iteration so the values stay bounded.
void BM_HadamardRow(benchmark::State& state) {
  const int64_t n = state.range(0);
  const Isa isa = state.range(1) == 0 ? Isa::kGeneric : state.range(1) == 1 ? Isa::kAvx2 : Isa::kAvx512;
  if (!isa_supported(isa, detect_cpu_features())) state.SkipWithError("ISA level not supported by this CPU");
  std::vector<float> x(n), row(n);
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (float& v : x) v = d(rng);
  for (auto _ : state) {
    row = x;
    hadamard_rows_with(isa, row.data(), 1, n, false);
    benchmark::DoNotOptimize(row.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetLabel(hadamard_row_kernel_name(isa));
}
BENCHMARK(BM_HadamardRow)->ArgsProduct({{1536, 5632, 2048}, {0, 1, 2}});

}  // namespace
}  // namespace lowbit
