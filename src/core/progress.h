// A progress line on stderr: "label  i/N  elapsed 12s  ETA 30s  extra".
// Redrawn in place on a terminal, at most every 0.5 s; on a pipe it prints one
// line per 10% so logs stay short.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace lowbit {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, bool enabled);
  ~ProgressBar();
  void update(int64_t done, const std::string& extra = "");
  void finish();
  double elapsed_seconds() const;

 private:
  void draw(int64_t done, const std::string& extra);

  std::string label_;
  int64_t total_;
  bool enabled_;
  bool is_tty_;
  bool finished_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace lowbit
