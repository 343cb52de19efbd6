// How the calibration windows are split between the ranks of `mpirun -np S`
// (docs/MPI.md), and how one process sums its statistics the same way.
//
// Shard s holds the contiguous windows [⌊s·N/S⌋, ⌊(s+1)·N/S⌋) of the N windows,
// so the shards in rank order are the windows in order: rows gathered in rank
// order are in the order one process sees them. With S ranks, rank r embeds and
// runs only shard r; every floating-point sum is the shard sums added in shard
// order. One process with S shards holds every window and starts a new partial
// sum at each shard's first token, which reproduces the S-rank sums bit for bit.
#pragma once

#include <cstdint>
#include <vector>

#include "core/communicator.h"
#include "core/status.h"
#include "pipeline/calibration.h"

namespace lowbit {

struct CalibrationShards {
  int count = 1;                      // S
  int begin = 0;                      // this rank's windows [begin, end)
  int end = 0;
  int64_t first_token = 0;            // begin · seq_len
  int64_t total_tokens = 0;           // N · seq_len
  std::vector<int64_t> shard_starts;  // local token indices where a new shard's sums begin (one process, S > 1)
};

// The first window of shard s.
int shard_begin(int n_windows, int shards, int s);

// The plan for this rank: shards = S (0: the number of ranks). With several ranks S
// must equal their number; every shard needs at least one window.
Expected<CalibrationShards> plan_calibration_shards(int n_windows, int seq_len, int shards, const Communicator& comm);

// Windows [begin, end) of `set`, in order.
CalibrationSet keep_windows(const CalibrationSet& set, int begin, int end);

}  // namespace lowbit
