// A STREAM-like memory bandwidth probe, run by `lowbit bench` in the same
// process as the model so the roofline fraction compares like with like.
//   read   every thread sums its share of one buffer (64-bit integer adds,
//          AVX-512 loads where available, kernels/stream_read.h): bytes = buffer size. This is what decode
//          does with the weights, so it is the roofline `lowbit bench` uses.
//   triad  a[i] = b[i] + s * c[i] over three FP32 arrays, split over the
//          threads; bytes = 3 * array size (STREAM's count, write-allocate
//          traffic not included).
// Buffers must be much larger than the last-level cache (the default 2 GiB read
// buffer is 4x the 480 MiB L3 this VM reports). Each kernel runs `repetitions`
// times after one untimed pass that faults the pages in; the best rate is kept
// (STREAM's convention).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/thread_pool.h"

namespace lowbit {

struct BandwidthOptions {
  uint64_t read_bytes = 2ull << 30;    // read buffer
  uint64_t triad_bytes = 512ull << 20; // each of the three triad arrays
  int repetitions = 5;
};

struct BandwidthResult {
  double read_gbs = 0.0;   // 1e9 bytes/s
  double triad_gbs = 0.0;
  uint64_t read_bytes = 0;
  uint64_t triad_bytes = 0;  // per array
};

Expected<BandwidthResult> measure_bandwidth(const BandwidthOptions& options, ThreadPool& pool);

}  // namespace lowbit
