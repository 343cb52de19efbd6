#include "eval/bandwidth.h"

#include "core/huge_page_allocator.h"
#include "kernels/stream_read.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

namespace lowbit {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

Expected<BandwidthResult> measure_bandwidth(const BandwidthOptions& options, ThreadPool& pool) {
  if (options.read_bytes < (1u << 20) || options.triad_bytes < (1u << 20) || options.repetitions < 1) {
    return make_error("bandwidth probe: buffers of at least 1 MiB and one repetition");
  }
  BandwidthResult r;
  r.read_bytes = options.read_bytes;
  r.triad_bytes = options.triad_bytes;
  const int n_threads = pool.size();
  {
    const int64_t words = static_cast<int64_t>(options.read_bytes / 8);
    // On huge pages where the system allows, as the packed weights are
    // (core/huge_page_allocator.h): the roofline is the same kind of stream.
    HugePageBuffer<uint64_t> buf = huge_page_buffer<uint64_t>(words);  // [words], first touched by the threads
    pool.parallel_for(words, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) buf[i] = static_cast<uint64_t>(i);
    });
    std::vector<uint64_t> sums(n_threads);
    const SumWordsFn sum_words = sum_words_kernel(active_isa());
    double best = 0.0;
    for (int rep = 0; rep <= options.repetitions; ++rep) {
      const auto t0 = Clock::now();
      pool.parallel_for(words, [&](int64_t b, int64_t e, int t) { sums[t] += sum_words(buf.get() + b, e - b); });
      const double s = seconds_since(t0);
      if (rep > 0) best = std::max(best, static_cast<double>(options.read_bytes) / s / 1e9);
    }
    uint64_t total = 0;
    for (uint64_t s : sums) total += s;
    // The sums are used, so the reads cannot be dropped: sum of 0..words-1, repetitions + 1 times.
    const uint64_t w = static_cast<uint64_t>(words);
    if (total != (w * (w - 1) / 2) * static_cast<uint64_t>(options.repetitions + 1)) {
      return make_error("bandwidth probe: read checksum mismatch");
    }
    r.read_gbs = best;
  }
  {
    const int64_t n = static_cast<int64_t>(options.triad_bytes / 4);
    HugePageBuffer<float> a = huge_page_buffer<float>(n), b = huge_page_buffer<float>(n), c = huge_page_buffer<float>(n);
    pool.parallel_for(n, [&](int64_t lo, int64_t hi, int) {
      for (int64_t i = lo; i < hi; ++i) a[i] = 0.0f, b[i] = 1.0f, c[i] = 2.0f;
    });
    const float s = 3.0f;
    double best = 0.0;
    for (int rep = 0; rep <= options.repetitions; ++rep) {
      const auto t0 = Clock::now();
      pool.parallel_for(n, [&](int64_t lo, int64_t hi, int) {
        float* __restrict pa = a.get();
        const float* __restrict pb = b.get();
        const float* __restrict pc = c.get();
        for (int64_t i = lo; i < hi; ++i) pa[i] = pb[i] + s * pc[i];
      });
      const double t = seconds_since(t0);
      if (rep > 0) best = std::max(best, 3.0 * static_cast<double>(options.triad_bytes) / t / 1e9);
    }
    if (a[n / 2] != 7.0f) return make_error("bandwidth probe: triad result {} instead of 7", a[n / 2]);
    r.triad_gbs = best;
  }
  return r;
}

}  // namespace lowbit
