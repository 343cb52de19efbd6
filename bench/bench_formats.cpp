// Quantize and dequantize throughput of scaled formats, GB/s of FP32 input
// (quantize) or output (dequantize), for the scalar reference and each fast path.
// Run: build/lowbit_bench_kernels --benchmark_filter=Formats
//        --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "formats/block_format.h"
#include "formats/format_eval.h"

namespace lowbit {
namespace {

constexpr int64_t kRows = 256;
constexpr int64_t kCols = 4096;  // [256, 4096]: 4 MiB of FP32

enum class Path { kReference, kGeneric, kAvx512 };

const std::vector<float>& input() {
  static const std::vector<float> x = synthetic_matrix(SyntheticInput::kGaussian, kRows, kCols, 1);
  return x;
}

// Resolves the format and the path's kernel; false (and a skip) when unavailable.
bool setup(benchmark::State& state, const char* name, Path path, const BlockFormat** format,
           std::optional<BlockKernel>* kernel) {
  auto f = find_block_format(name);
  if (!f.ok()) {
    state.SkipWithError(f.status().message().c_str());
    return false;
  }
  *format = *f;
  if (path == Path::kReference) return true;
  const Isa isa = path == Path::kGeneric ? Isa::kGeneric : Isa::kAvx512;
  auto k = BlockKernel::create(**format, isa);
  if (!k.ok()) {
    state.SkipWithError(k.status().message().c_str());
    return false;
  }
  kernel->emplace(std::move(k).value());
  return true;
}

void set_rate(benchmark::State& state) {
  state.counters["GB/s"] = benchmark::Counter(4.0 * kRows * kCols, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}

void BM_FormatsQuantize(benchmark::State& state, const char* name, Path path) {
  const BlockFormat* format = nullptr;
  std::optional<BlockKernel> kernel;
  if (!setup(state, name, path, &format, &kernel)) return;
  const std::vector<float>& x = input();
  for (auto _ : state) {
    auto q = kernel ? kernel->quantize(x.data(), kRows, kCols) : quantize_reference(*format, x.data(), kRows, kCols);
    benchmark::DoNotOptimize(q.value().codes.data());
  }
  set_rate(state);
}

void BM_FormatsDequantize(benchmark::State& state, const char* name, Path path) {
  const BlockFormat* format = nullptr;
  std::optional<BlockKernel> kernel;
  if (!setup(state, name, path, &format, &kernel)) return;
  auto q = quantize_reference(*format, input().data(), kRows, kCols);
  std::vector<float> out(kRows * kCols);  // [rows, cols]
  for (auto _ : state) {
    const Status s = kernel ? kernel->dequantize(*q, out.data()) : dequantize_reference(*format, *q, out.data());
    benchmark::DoNotOptimize(s.ok());
    benchmark::DoNotOptimize(out.data());
  }
  set_rate(state);
}

#define LOWBIT_FORMAT_BENCH(fn, name)                                  \
  BENCHMARK_CAPTURE(fn, name##_reference, #name, Path::kReference)     \
      ->Unit(benchmark::kMillisecond);                                 \
  BENCHMARK_CAPTURE(fn, name##_generic, #name, Path::kGeneric)         \
      ->Unit(benchmark::kMillisecond);                                 \
  BENCHMARK_CAPTURE(fn, name##_avx512, #name, Path::kAvx512)->Unit(benchmark::kMillisecond)

LOWBIT_FORMAT_BENCH(BM_FormatsQuantize, int4_g128);
LOWBIT_FORMAT_BENCH(BM_FormatsQuantize, fp8_e4m3);
LOWBIT_FORMAT_BENCH(BM_FormatsQuantize, mxfp4);
LOWBIT_FORMAT_BENCH(BM_FormatsQuantize, nvfp4);
LOWBIT_FORMAT_BENCH(BM_FormatsDequantize, int4_g128);
LOWBIT_FORMAT_BENCH(BM_FormatsDequantize, fp8_e4m3);
LOWBIT_FORMAT_BENCH(BM_FormatsDequantize, mxfp4);
LOWBIT_FORMAT_BENCH(BM_FormatsDequantize, nvfp4);

}  // namespace
}  // namespace lowbit
