// Google Benchmark: one-token decode attention over a quantized KV cache at
// SmolLM2-135M's attention shape (9 query heads, 3 KV heads of 64) and 2048
// positions, one thread: the fused path (kvcache/kv_fused_attention.h, reference
// or AVX-512 kernels) against the materialising path (KvCache::read() of all
// positions to FP32, then per query head OpenBLAS sgemv for the scores, softmax,
// sgemv for the values, as model/decoder_block.cpp does for one token).
// Run: build/lowbit_bench_kernels --benchmark_filter='KvAttention'.
// args: spec index (kSpecs), ISA for the fused path (0 generic = the reference, 2 avx512; the
// other benchmarks' numbering, with no AVX2 variant here).
#include <benchmark/benchmark.h>

#include <cblas.h>

#include <cmath>
#include <random>

#include "kvcache/kv_fused_attention.h"
#include "kvcache/quantized_kv_cache.h"

namespace lowbit {
namespace {

const char* const kSpecs[] = {"k4v4", "k8v8", "k2v2-kivi-r128", "k4v4-kivi-r128"};
constexpr int kHeads = 9, kKvHeads = 3, kHeadDim = 64, kPositions = 2048;

std::unique_ptr<QuantizedKvCache> filled_cache(const char* text) {
  auto spec = parse_kv_spec(text);
  auto cache = std::move(QuantizedKvCache::create(*spec, KvCacheShape{1, kPositions, kKvHeads, kHeadDim})).value();
  std::mt19937 rng(1);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  std::vector<float> k(kKvHeads * kHeadDim), v(k.size());
  for (int p = 0; p < kPositions; ++p) {
    for (float& x : k) x = n01(rng);
    for (float& x : v) x = n01(rng);
    (void)cache->write(0, p, 1, k.data(), v.data());
  }
  return cache;
}

std::vector<float> query() {
  std::mt19937 rng(2);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  std::vector<float> q(kHeads * kHeadDim);
  for (float& x : q) x = n01(rng);
  return q;
}

void BM_KvAttentionFused(benchmark::State& state) {
  // range(1): 0 the reference, 1 AVX2, 2 AVX-512 (skipped where the CPU lacks it).
  const Isa isa = state.range(1) == 0 ? Isa::kGeneric : state.range(1) == 1 ? Isa::kAvx2 : Isa::kAvx512;
  if (!isa_supported(isa, detect_cpu_features())) {
    state.SkipWithError("ISA level not supported by this CPU");
    return;
  }
  auto cache = filled_cache(kSpecs[state.range(0)]);
  cache->set_fused_kernels(fused_attention_kernels(isa));
  const std::vector<float> q = query();
  std::vector<float> out(q.size());
  ThreadPool pool(1);
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  for (auto _ : state) {
    cache->attend_decode(0, kPositions, q.data(), kHeads, scale, out.data(), pool);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(kSpecs[state.range(0)]);
}

void BM_KvAttentionMaterialize(benchmark::State& state) {
  auto cache = filled_cache(kSpecs[state.range(0)]);
  const std::vector<float> q = query();
  const int kv_dim = kKvHeads * kHeadDim, group = kHeads / kKvHeads;
  std::vector<float> keys(static_cast<size_t>(kPositions) * kv_dim), values(keys.size());  // [n_pos, kv_dim]
  std::vector<float> scores(kPositions), out(q.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  openblas_set_num_threads(1);
  for (auto _ : state) {
    cache->read(0, kPositions, keys.data(), values.data());
    for (int h = 0; h < kHeads; ++h) {
      const int kvh = h / group;
      cblas_sgemv(CblasRowMajor, CblasNoTrans, kPositions, kHeadDim, scale, keys.data() + kvh * kHeadDim, kv_dim,
                  q.data() + h * kHeadDim, 1, 0.0f, scores.data(), 1);
      float mx = scores[0], sum = 0.0f;
      for (float s : scores) mx = std::max(mx, s);
      for (float& s : scores) sum += (s = std::exp(s - mx));
      for (float& s : scores) s /= sum;
      cblas_sgemv(CblasRowMajor, CblasTrans, kPositions, kHeadDim, 1.0f, values.data() + kvh * kHeadDim, kv_dim,
                  scores.data(), 1, 0.0f, out.data() + h * kHeadDim, 1);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(kSpecs[state.range(0)]);
}

BENCHMARK(BM_KvAttentionFused)->ArgsProduct({{0, 1, 2, 3}, {0, 1, 2}})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_KvAttentionMaterialize)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace lowbit
