// Google Benchmark for the AMX-INT8 prompt GEMMs (kernels/amx_gemm.h) beside
// the AVX-512 VNNI kernels they replace, at TinyLlama-1.1B shapes, one thread.
// Each iteration is what PackedLinear::integer_forward does per call: quantize
// the activations per token, build the kernel's activation layout (and the
// W4A8 group sums), run the GEMM over all rows.
// Run: build/lowbit_bench_kernels --benchmark_filter=IntGemm
// args: kernel (0 w8a8 vnni, 1 w8a8 amx, 2 w4a8 vnni, 3 w4a8 amx), rows, cols, tokens.
#include <benchmark/benchmark.h>

#include <random>

#include "kernels/amx_gemm.h"
#include "kernels/w4a8.h"
#include "kernels/w8a8.h"
#include "model/packed_convert.h"
#include "quant/quantized_weight.h"

namespace lowbit {
namespace {

// [rows, cols] N(0, 0.02²) weights quantized to `format` and packed.
PackedMatrix packed_weight(const char* format, int64_t rows, int64_t cols) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = d(rng);
  QuantizedWeight q;
  q.format = format;
  q.tensor = std::move(quantize_matrix(format, w.data(), rows, cols)).value();
  return std::move(pack_quantized_weight(q)).value();
}

void BM_IntGemm(benchmark::State& state) {
  const int64_t kernel = state.range(0), rows = state.range(1), cols = state.range(2), tokens = state.range(3);
  const bool amx = kernel % 2 == 1, w8 = kernel < 2;
  if (!isa_supported(amx ? Isa::kAmx : Isa::kAvx512Vnni, detect_cpu_features())) {
    state.SkipWithError("ISA not supported");
    return;
  }
  const PackedMatrix w = packed_weight(w8 ? "int8_pc" : "int4_g128_asym", rows, cols);
  const std::vector<int32_t> rowsum = w8 ? int8_row_sums(w) : std::vector<int32_t>{};
  std::mt19937 rng(2);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(tokens * cols));  // [tokens, cols]
  for (float& v : x) v = d(rng);
  std::vector<float> y(static_cast<size_t>(tokens * rows));  // [tokens, rows]
  const W8A8Kernels vnni8 = w8a8_kernels_avx512vnni();
  const QuantizeRowsFn quantize = quantize_rows_int8_avx512;  // the runtime's AVX-512 quantizer
  Int8Activations a;
  AmxActivations xa;
  for (auto _ : state) {
    reserve_int8_activations(tokens, w.cols_padded, a);
    quantize(x.data(), cols, 0, tokens, a);
    if (amx) prepare_amx_activations(a, xa);
    const std::vector<int32_t> qsum = w8 ? std::vector<int32_t>{} : group_activation_sums(w, a);
    switch (kernel) {
      case 0: vnni8.gemm(w, rowsum, a, 0, rows, y.data(), rows); break;
      case 1: w8a8_amx(w, xa, 0, rows, y.data(), rows); break;
      case 2: w4a8_avx512vnni(w, a, qsum, 0, rows, y.data(), rows); break;
      default: w4a8_amx(w, xa, qsum, 0, rows, y.data(), rows); break;
    }
    benchmark::DoNotOptimize(y.data());
  }
  static const char* const kNames[] = {"w8a8/avx512vnni", "w8a8/amx", "w4a8 g128/avx512vnni", "w4a8 g128/amx"};
  state.SetLabel(kNames[kernel]);
  state.counters["GOP/s"] = benchmark::Counter(2.0 * rows * cols * tokens,
                                               benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void int_gemm_args(benchmark::internal::Benchmark* b) {
  for (int64_t kernel = 0; kernel < 4; ++kernel) {
    b->Args({kernel, 5632, 2048, 512})->Args({kernel, 2048, 5632, 512})->Args({kernel, 2048, 2048, 16});
  }
}
BENCHMARK(BM_IntGemm)->Apply(int_gemm_args)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lowbit
