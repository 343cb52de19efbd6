#include "pipeline/calibration_shards.h"

namespace lowbit {

int shard_begin(int n_windows, int shards, int s) {
  return static_cast<int>(static_cast<int64_t>(s) * n_windows / shards);
}

Expected<CalibrationShards> plan_calibration_shards(int n_windows, int seq_len, int shards, const Communicator& comm) {
  CalibrationShards p;
  p.count = shards > 0 ? shards : comm.size();
  if (comm.size() > 1 && p.count != comm.size()) {
    return make_error("--calib-shards {}: under mpirun the shards are the {} ranks (leave it out or give {})", shards,
                      comm.size(), comm.size());
  }
  if (p.count > n_windows) {
    return make_error("{} calibration shards need at least as many windows, got {} (--calib-samples)", p.count,
                      n_windows);
  }
  p.total_tokens = static_cast<int64_t>(n_windows) * seq_len;
  if (comm.size() > 1) {
    p.begin = shard_begin(n_windows, p.count, comm.rank());
    p.end = shard_begin(n_windows, p.count, comm.rank() + 1);
  } else {
    p.begin = 0;
    p.end = n_windows;
    for (int s = 1; s < p.count; ++s) {
      p.shard_starts.push_back(static_cast<int64_t>(shard_begin(n_windows, p.count, s)) * seq_len);
    }
  }
  p.first_token = static_cast<int64_t>(p.begin) * seq_len;
  return p;
}

CalibrationSet keep_windows(const CalibrationSet& set, int begin, int end) {
  CalibrationSet out;
  out.seq_len = set.seq_len;
  out.tokens.assign(set.tokens.begin() + static_cast<int64_t>(begin) * set.seq_len,
                    set.tokens.begin() + static_cast<int64_t>(end) * set.seq_len);
  out.windows.assign(set.windows.begin() + begin, set.windows.begin() + end);
  return out;
}

}  // namespace lowbit
