// Google Benchmark for the trellis-coded decode GEMVs (kernels/trellis_kernels.h)
// against lut4 W4 (int4_g128) in the same process.
//   BM_TrellisGemv: one matrix, one thread, per ISA (args: format index in kFormats,
//     ISA level 0 generic / 1 avx2 / 2 avx512vnni (tcq: the avx512vbmi row, skipped
//     without VBMI), rows, cols): GB/s of packed storage and G weights/s.
//   BM_TrellisDequantizeRows: the prompt path's row decode, per ISA.
//   BM_TrellisGemvHiOnly: the VBMI GEMV with 8-bit x, to price the 16-bit activations.
//   BM_TrellisDecodeModel: `lowbit bench --shape tinyllama-1.1b` without a recipe
//     (eval/synthetic_model.h makes random tcq codes): every linear in the format,
//     2 threads, tg16 after an 8-token prompt, 3 repetitions; counters tg tokens/s,
//     GB/s of weights read per token, the read bandwidth measured in the same
//     process on the same 2 threads (eval/bandwidth.h) and their ratio, the
//     decode roofline fraction.
// Run: build/lowbit_bench_kernels --benchmark_filter='Trellis'
#include <benchmark/benchmark.h>

#include <cblas.h>

#include <random>

#include "eval/bandwidth.h"
#include "eval/bench.h"
#include "eval/synthetic_model.h"
#include "formats/trellis_code.h"
#include "kernels/kernel_table.h"
#include "kernels/trellis_kernels.h"
#include "model/packed_convert.h"
#include "quant/quantized_weight.h"

namespace lowbit {
namespace {

// 5, 6: the group size of the w2-tcq and w3-tcq recipes (one scale per 4 sequences).
const char* const kFormats[] = {"tcq2_g64", "tcq2p5_g64", "tcq3_g64", "tcq4_g64", "int4_g128", "tcq2_g256", "tcq3_g256"};

std::vector<float> random_values(int64_t n, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

PackedMatrix packed(const char* format, int64_t rows, int64_t cols) {
  QuantizedWeight q;
  q.format = format;
  if (is_trellis_format_name(format)) {
    const TrellisParams p = parse_trellis_format(format).value();
    std::mt19937_64 rng(1);
    q.tensor.rows = rows;
    q.tensor.cols = cols;
    q.tensor.codes.resize(static_cast<size_t>(rows * trellis_row_bytes(p, cols)));
    for (uint8_t& b : q.tensor.codes) b = static_cast<uint8_t>(rng());
    q.tensor.scales.assign(static_cast<size_t>(2 * rows * trellis_row_groups(p, cols)), 0x10);  // FP16 0x1010
  } else {
    const std::vector<float> w = random_values(rows * cols, 1);
    q.tensor = std::move(quantize_matrix(format, w.data(), rows, cols)).value();
  }
  return std::move(pack_quantized_weight(q)).value();
}

Isa isa_arg(int64_t a) { return a == 0 ? Isa::kGeneric : a == 1 ? Isa::kAvx2 : Isa::kAvx512Vnni; }

// What every per-matrix benchmark sets up: the format (arg 0, index in kFormats),
// the ISA level (arg 1, isa_arg), the packed [rows, cols] matrix and the table
// row the runtime picks for it there. Skips (false) where this CPU lacks the
// level, or where the row picked is not the one asked for (tcq at AVX-512 needs
// VBMI: without it the AVX2 row would run, labelled as such).
struct MatrixCase {
  const char* format = nullptr;
  PackedMatrix w;
  const LinearKernel* entry = nullptr;

  bool set_up(benchmark::State& state, int64_t rows, int64_t cols) {
    format = kFormats[state.range(0)];
    const Isa isa = isa_arg(state.range(1));
    if (!isa_supported(isa, detect_cpu_features())) {
      state.SkipWithError("ISA not supported");
      return false;
    }
    w = packed(format, rows, cols);
    entry = find_linear_kernel(w, ActFormat::kFp32, isa);
    if (entry == nullptr || entry->isa != isa) {
      state.SkipWithError("no kernel of this ISA level for the format on this CPU");
      return false;
    }
    state.SetLabel(std::string(format) + " " + entry->name);
    return true;
  }
};

void set_rates(benchmark::State& state, double bytes, double weights) {
  using C = benchmark::Counter;
  if (bytes > 0) state.counters["GB/s"] = C(bytes, C::kIsIterationInvariantRate, C::kIs1000);
  state.counters["Gw/s"] = C(weights, C::kIsIterationInvariantRate, C::kIs1000);
}

// One GEMV (args: format, ISA, rows, cols): GB/s of packed storage, G weights/s.
void BM_TrellisGemv(benchmark::State& state) {
  MatrixCase m;
  if (!m.set_up(state, state.range(2), state.range(3))) return;
  const std::vector<float> x = random_values(m.w.cols, 2);
  PackedActivation a;
  std::vector<float> y(static_cast<size_t>(m.w.rows));
  for (auto _ : state) {
    prepare_activation(m.w, x.data(), a, m.entry->fp.prepare_fixed16);  // once per call in the runtime too
    m.entry->fp.gemv(m.w, a, 0, m.w.rows, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_rates(state, static_cast<double>(m.w.storage_bytes()), static_cast<double>(m.w.rows * m.w.cols));
}
BENCHMARK(BM_TrellisGemv)
    ->ArgsProduct({{0, 1, 2, 3, 4, 5, 6}, {1, 2}, {5632}, {2048}})
    ->Args({0, 0, 5632, 2048})
    ->Args({2, 2, 2048, 5632})
    ->Args({4, 2, 2048, 5632});

// The prompt path's row decode (dequantize_rows of a 256-row tile, then sgemm in the
// runtime): args format, ISA, rows, cols.
void BM_TrellisDequantizeRows(benchmark::State& state) {
  MatrixCase m;
  if (!m.set_up(state, state.range(2), state.range(3))) return;
  const int64_t tile = 256;
  std::vector<float> out(static_cast<size_t>(tile * m.w.cols));
  int64_t r0 = 0;
  for (auto _ : state) {
    m.entry->fp.dequantize_rows(m.w, r0, r0 + tile, out.data());
    r0 = (r0 + tile) % (m.w.rows - tile);
    benchmark::DoNotOptimize(out.data());
  }
  set_rates(state, 0.0, static_cast<double>(tile * m.w.cols));
}
BENCHMARK(BM_TrellisDequantizeRows)->ArgsProduct({{0, 2, 4}, {0, 1, 2}, {5632}, {2048}});

// The AVX-512 VBMI GEMV with 8-bit x (trellis_gemv_avx512vbmi_hi_only: one vpdpbusd per
// 64 weights instead of two), to price the 16-bit activations; arg: format index.
void BM_TrellisGemvHiOnly(benchmark::State& state) {
  if (!detect_cpu_features().avx512vbmi || !detect_cpu_features().gfni) {
    state.SkipWithError("no AVX512_VBMI and GFNI");
    return;
  }
  MatrixCase m;
  if (!m.set_up(state, 5632, 2048)) return;
  const std::vector<float> x = random_values(m.w.cols, 2);
  PackedActivation a;
  std::vector<float> y(static_cast<size_t>(m.w.rows));
  for (auto _ : state) {
    prepare_activation(m.w, x.data(), a, prepare_trellis_fixed16);
    trellis_gemv_avx512vbmi_hi_only(m.w, a, 0, m.w.rows, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::string(m.format) + " tcq/avx512vnni+vbmi+gfni, 8-bit x");
  set_rates(state, static_cast<double>(m.w.storage_bytes()), static_cast<double>(m.w.rows * m.w.cols));
}
BENCHMARK(BM_TrellisGemvHiOnly)->Args({0, 2})->Args({2, 2});

void BM_TrellisDecodeModel(benchmark::State& state) {
  const char* format = kFormats[state.range(0)];
  const int threads = 2;
  openblas_set_num_threads(threads);
  ThreadPool pool(threads);
  ModelConfig config = shape_config("tinyllama-1.1b").value();
  auto built = build_synthetic_model(
      config, [format](const std::string&) -> Expected<std::string> { return std::string(format); }, 1, pool);
  if (!built.ok()) {
    state.SkipWithError(built.status().message().c_str());
    return;
  }
  LlamaModel& model = built->model;
  BenchOptions options;
  options.prompt_tokens = 8;
  options.decode_tokens = 16;
  options.repetitions = 3;
  double tg = 0.0;
  for (auto _ : state) {
    auto r = run_bench(model, options, pool);
    if (!r.ok()) {
      state.SkipWithError(r.status().message().c_str());
      return;
    }
    tg = r->tg_median;
  }
  auto bw = measure_bandwidth({}, pool);
  const double gbs = static_cast<double>(decode_weight_bytes(model)) * tg / 1e9;
  std::string kernels;
  for (const auto& [name, n] : built->report.packed) kernels += fmt::format("{} x{} ", name, n);
  state.SetLabel(std::string(format) + " " + kernels);
  state.counters["tg_tok/s"] = tg;
  state.counters["weights_GB/s"] = gbs;
  state.counters["read_bw_GB/s"] = bw.ok() ? bw->read_gbs : 0.0;
  state.counters["roofline"] = bw.ok() && bw->read_gbs > 0.0 ? gbs / bw->read_gbs : 0.0;
}
BENCHMARK(BM_TrellisDecodeModel)->Arg(0)->Arg(2)->Arg(4)->Arg(5)->Arg(6)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace
}  // namespace lowbit
