// How far two runs of the same evaluation apart are, logit by logit: `ppl
// --save-logits F` records the logits of every scored position, a later run with
// `--compare-logits F` (another batch size, thread count, ISA level, or
// --deterministic) compares its own with them (docs/EVALUATION.md, "Reproducible
// evaluation"). The measures, over the scored positions:
//   max |Δ logit|        the largest absolute difference of one logit;
//   identical rows       positions whose [vocab] logits are equal bit for bit;
//   KLD                  KL(recorded || this) of the two softmax distributions (nats);
//   flipped argmax       positions whose greedy (argmax) token differs.
// File: "LBLOGIT1", int64 vocab, then float32 rows [rows, vocab] little-endian.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/atomic_file_writer.h"
#include "core/status.h"

namespace lowbit {

struct LogitDiff {
  int64_t rows = 0;
  int64_t identical_rows = 0;
  double max_abs_delta = 0.0;
  double kld_sum = 0.0;
  double kld_max = 0.0;
  int64_t flipped_argmax = 0;
  double kld_mean() const { return rows > 0 ? kld_sum / static_cast<double>(rows) : 0.0; }
};

// The measures of one position, logits against recorded (both [vocab]), added into d.
void add_logit_row_diff(const float* recorded, const float* logits, int vocab, LogitDiff& d);

class LogitRecorder {
 public:
  static Expected<LogitRecorder> create(const std::string& path, int vocab);
  Status add(const float* logits);  // one row [vocab]
  Status commit();

 private:
  explicit LogitRecorder(AtomicFileWriter writer, int vocab) : writer_(std::move(writer)), vocab_(vocab) {}
  AtomicFileWriter writer_;
  int vocab_;
};

class LogitComparer {
 public:
  // Error when the file is not a logit record or its vocab differs.
  static Expected<LogitComparer> open(const std::string& path, int vocab);
  Status add(const float* logits);  // the next row [vocab]; error past the recorded rows
  // Error when fewer rows were given than recorded.
  Expected<LogitDiff> finish();

 private:
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  LogitComparer() = default;
  std::unique_ptr<std::FILE, Closer> file_;
  std::string path_;
  int vocab_ = 0;
  int64_t recorded_rows_ = 0;
  std::vector<float> row_;
  LogitDiff diff_;
};

}  // namespace lowbit
