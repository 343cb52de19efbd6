// Google Benchmark for the packed GEMV / row-dequantization kernels
// (kernels/packed_matrix.h) at TinyLlama-1.1B shapes, one thread, against the
// FP32 OpenBLAS sgemv of the same shape in the same run (BM_Fp32Sgemv).
// Run: build/lowbit_bench_kernels --benchmark_filter='Packed|Fp32Sgemv'.
// args: format index (kFormats), ISA (0 generic, 1 avx2, 2 avx512, 3 avx512vnni, 4 avx2 with FP32
// activations: the AVX2 level's kernels without their fixed-point preparation, i.e. lut4/avx2 and
// int8/avx2, 5 avxvnni), rows, cols; every variant of a format runs in the same process, so their numbers
// compare directly.
#include <benchmark/benchmark.h>

#include <cblas.h>

#include <random>

#include "kernels/kernel_table.h"
#include "kernels/packed_matrix.h"
#include "kernels/w4a4.h"
#include "kernels/w4a8.h"
#include "kernels/w8a8.h"
#include "model/packed_convert.h"
#include "quant/quantized_weight.h"

namespace lowbit {
namespace {

const char* const kFormats[] = {"int4_g128_asym", "int4_g128", "mxfp4", "nvfp4", "nf4_g64", "int8_pc", "fp8_e4m3",
                                "bf16", "fp16", "int3_g128", "int2_g64"};

std::vector<float> random_values(int64_t n, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

PackedMatrix packed(const char* format, int64_t rows, int64_t cols) {
  const std::vector<float> w = random_values(rows * cols, 1);
  QuantizedWeight q;
  q.format = format;
  q.tensor = std::move(quantize_matrix(format, w.data(), rows, cols)).value();
  return std::move(pack_quantized_weight(q)).value();
}

Isa isa_arg(int64_t a) {
  if (a == 5) return Isa::kAvxVnni;
  return a == 0 ? Isa::kGeneric : a == 1 || a == 4 ? Isa::kAvx2 : a == 2 ? Isa::kAvx512 : Isa::kAvx512Vnni;
}

void BM_PackedGemv(benchmark::State& state) {
  const char* format = kFormats[state.range(0)];
  const Isa isa = isa_arg(state.range(1));
  if (!isa_supported(isa, detect_cpu_features())) {
    state.SkipWithError("ISA not supported");
    return;
  }
  const PackedMatrix w = packed(format, state.range(2), state.range(3));
  const LinearKernel& entry = *find_linear_kernel(w, ActFormat::kFp32, isa);
  const PackedKernels k = entry.fp;
  const std::vector<float> x = random_values(w.cols, 2);
  PackedActivation a;
  std::vector<float> y(static_cast<size_t>(w.rows));
  const Fixed16Prepare prepare = state.range(1) == 4 ? nullptr : k.prepare_fixed16;
  for (auto _ : state) {
    prepare_activation(w, x.data(), a, prepare);  // once per call in the runtime too
    k.gemv(w, a, 0, w.rows, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  const bool fp32_x = prepare == nullptr && k.prepare_fixed16 != nullptr;
  state.SetLabel(std::string(format) + " " + entry.name + (fp32_x ? " (fp32 x)" : ""));
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(w.storage_bytes()),
                                              benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["Gw/s"] = benchmark::Counter(static_cast<double>(w.rows * w.cols),
                                              benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void BM_PackedDequantizeRows(benchmark::State& state) {
  const char* format = kFormats[state.range(0)];
  const Isa isa = isa_arg(state.range(1));
  if (!isa_supported(isa, detect_cpu_features())) {
    state.SkipWithError("ISA not supported");
    return;
  }
  const PackedMatrix w = packed(format, state.range(2), state.range(3));
  const LinearKernel& entry = *find_linear_kernel(w, ActFormat::kFp32, isa);
  const PackedKernels k = entry.fp;
  const int64_t tile = 256;
  std::vector<float> out(static_cast<size_t>(tile * w.cols));
  int64_t r0 = 0;
  for (auto _ : state) {
    k.dequantize_rows(w, r0, r0 + tile, out.data());
    r0 = (r0 + tile) % (w.rows - tile);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(std::string(format) + " " + entry.name);
  state.counters["Gw/s"] = benchmark::Counter(static_cast<double>(tile * w.cols),
                                              benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void BM_Fp32Sgemv(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const std::vector<float> w = random_values(rows * cols, 1), x = random_values(cols, 2);
  std::vector<float> y(static_cast<size_t>(rows));
  openblas_set_num_threads(1);
  for (auto _ : state) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(rows), static_cast<int>(cols), 1.0f, w.data(),
                static_cast<int>(cols), x.data(), 1, 0.0f, y.data(), 1);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel("f32 openblas sgemv");
  state.counters["GB/s"] = benchmark::Counter(4.0 * rows * cols, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
  state.counters["Gw/s"] = benchmark::Counter(static_cast<double>(rows * cols),
                                              benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// The integer-activation kernels' ISA argument: 0 generic, 1 avx2, 2 avx512vnni.
// 0 generic, 1 avx2, 2 avx512vnni, 3 avxvnni.
Isa int8_isa_arg(int64_t a) {
  return a == 0 ? Isa::kGeneric : a == 1 ? Isa::kAvx2 : a == 3 ? Isa::kAvxVnni : Isa::kAvx512Vnni;
}

// W8A8 (kernels/w8a8.h): args ISA (int8_isa_arg), rows, cols, tokens. The
// activation quantization is timed too (it runs once per linear call).
void BM_W8A8(benchmark::State& state) {
  const Isa isa = int8_isa_arg(state.range(0));
  if (!isa_supported(isa, detect_cpu_features())) {
    state.SkipWithError("ISA not supported");
    return;
  }
  const int64_t rows = state.range(1), cols = state.range(2), tokens = state.range(3);
  const PackedMatrix w = packed("int8_pc", rows, cols);
  const std::vector<int32_t> rowsum = int8_row_sums(w);
  const LinearKernel& entry = *find_linear_kernel(w, ActFormat::kInt8, isa);
  const W8A8Kernels k = entry.w8a8;
  const std::vector<float> x = random_values(tokens * cols, 2);
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  Int8Activations a;
  for (auto _ : state) {
    quantize_activations_int8(x.data(), tokens, cols, w.cols_padded, a);
    k.gemm(w, rowsum, a, 0, rows, y.data(), rows);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(entry.name);
  state.counters["GOP/s"] = benchmark::Counter(2.0 * rows * cols * tokens, benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::kIs1000);
}
BENCHMARK(BM_W8A8)->Args({0, 5632, 2048, 1})->Args({1, 5632, 2048, 1})->Args({3, 5632, 2048, 1})
    ->Args({2, 5632, 2048, 1})->Args({1, 5632, 2048, 64})->Args({3, 5632, 2048, 64})->Args({2, 5632, 2048, 64})
    ->Args({1, 2048, 5632, 512})->Args({3, 2048, 5632, 512})->Args({2, 2048, 5632, 512});

// W4A8 (kernels/w4a8.h), int4_g128_asym: args ISA (int8_isa_arg; generic is the
// reference loop), rows, cols, tokens.
void BM_W4A8(benchmark::State& state) {
  const Isa isa = int8_isa_arg(state.range(0));
  if (!isa_supported(isa, detect_cpu_features())) {
    state.SkipWithError("ISA not supported");
    return;
  }
  const int64_t rows = state.range(1), cols = state.range(2), tokens = state.range(3);
  const PackedMatrix w = packed("int4_g128_asym", rows, cols);
  const LinearKernel& entry = *find_linear_kernel(w, ActFormat::kInt8, isa);
  const W4A8Fn kernel = entry.w4a8;
  const std::vector<float> x = random_values(tokens * cols, 2);
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  Int8Activations a;
  for (auto _ : state) {
    quantize_activations_int8(x.data(), tokens, cols, w.cols_padded, a);
    const std::vector<int32_t> qsum = group_activation_sums(w, a);
    kernel(w, a, qsum, 0, rows, y.data(), rows);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(entry.name);
  state.counters["GOP/s"] = benchmark::Counter(2.0 * rows * cols * tokens, benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::kIs1000);
}
BENCHMARK(BM_W4A8)->Args({0, 5632, 2048, 1})->Args({1, 5632, 2048, 1})->Args({3, 5632, 2048, 1})
    ->Args({2, 5632, 2048, 1})->Args({1, 2048, 5632, 64})->Args({3, 2048, 5632, 64})->Args({2, 2048, 5632, 64});

// W4A4 (kernels/w4a4.h), int4_g128_asym weights, INT4 activations per token
// (act group 0) or per group along K: args ISA (0 reference, 1 avx2, 2 avx512vnni),
// rows, cols, tokens, act group. Activation quantization and sub-block sums are timed.
void BM_W4A4(benchmark::State& state) {
  const Isa isa = state.range(0) == 0 ? Isa::kGeneric : state.range(0) == 1 ? Isa::kAvx2 : Isa::kAvx512Vnni;
  if (!isa_supported(isa, detect_cpu_features())) {
    state.SkipWithError("ISA not supported");
    return;
  }
  const int64_t rows = state.range(1), cols = state.range(2), tokens = state.range(3), group = state.range(4);
  const PackedMatrix w = packed("int4_g128_asym", rows, cols);
  const LinearKernel& entry = *find_linear_kernel(w, ActFormat::kInt4, isa);
  const W4A4Fn k = entry.w4a4;
  const std::vector<float> x = random_values(tokens * cols, 2);
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  Int4Activations a;
  for (auto _ : state) {
    quantize_activations_int4(x.data(), tokens, cols, w.cols_padded, group, {}, a);
    const std::vector<int32_t> qsum = w4a4_block_sums(w, a);
    k(w, a, qsum, 0, rows, y.data(), rows);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(entry.name);
  state.counters["GOP/s"] = benchmark::Counter(2.0 * rows * cols * tokens, benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::kIs1000);
}
BENCHMARK(BM_W4A4)->Args({0, 5632, 2048, 1, 0})->Args({1, 5632, 2048, 1, 0})->Args({2, 5632, 2048, 1, 0})
    ->Args({1, 2048, 5632, 64, 0})->Args({2, 2048, 5632, 64, 0})->Args({1, 2048, 5632, 64, 32})
    ->Args({2, 2048, 5632, 64, 32});

void packed_args(benchmark::internal::Benchmark* b) {
  for (int64_t f = 0; f < static_cast<int64_t>(std::size(kFormats)); ++f) {
    for (int64_t isa : {0, 4, 1, 5, 2, 3}) b->Args({f, isa, 5632, 2048});
  }
}

BENCHMARK(BM_PackedGemv)->Apply(packed_args);
BENCHMARK(BM_PackedDequantizeRows)->Apply(packed_args);
BENCHMARK(BM_Fp32Sgemv)->Args({5632, 2048});

}  // namespace
}  // namespace lowbit
