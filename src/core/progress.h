// A progress line on stderr: "label  3/10  elapsed 12s  ETA 30s  extra".
//
// Whether to show progress at all is the caller's choice (the CLI shows it when
// stderr is a terminal or --progress forces it, never under --quiet); this class
// only draws. On a terminal the line is redrawn in place at most every 0.5 s; on
// a pipe or file it prints one line per 10 % so logs stay short.
//
// ETA: elapsed · (total − done) / done, the remaining work at the rate so far.
// Before one unit has finished there is no rate, so no ETA is printed (an "ETA 0s"
// at the start would be a wrong answer). The units can be weighted by cost: the
// quantize pipeline counts parameters, so a wide FFN projection moves the line as
// much as it costs; such a bar shows a percentage instead of counts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace lowbit {

// Where the bar's time and text come from: the defaults read the steady clock and
// write to stderr (terminal detected with isatty); tests inject a fake clock.
struct ProgressIo {
  std::function<double()> now_seconds;             // monotonic seconds
  std::function<void(const std::string&)> write;  // raw text, "\r" and escapes included
  bool tty = false;
  static ProgressIo standard();
};

enum class ProgressUnits {
  kCount,    // "3/10": chunks, layers, tensors
  kPercent,  // "37%": units weighted by cost (parameters)
};

// "label 3/10  elapsed 12s  ETA 30s  extra" (no ETA while done == 0; no trailing
// spaces without extra). Seconds over 90 print as minutes ("4m05s").
std::string format_progress(const std::string& label, int64_t done, int64_t total, double elapsed_seconds,
                            const std::string& extra, ProgressUnits units = ProgressUnits::kCount);

// "12s", "4m05s", "2h03m".
std::string format_duration(double seconds);

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, bool enabled, ProgressUnits units = ProgressUnits::kCount,
              ProgressIo io = ProgressIo::standard());
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // `done` units of `total` have finished.
  void update(int64_t done, const std::string& extra = "");
  void finish();
  double elapsed_seconds() const;

 private:
  void draw(int64_t done, const std::string& extra);

  std::string label_;
  int64_t total_;
  bool enabled_;
  ProgressUnits units_;
  ProgressIo io_;
  bool finished_ = false;
  bool drawn_ = false;
  int last_decile_ = -1;
  double start_ = 0.0;
  double last_draw_ = 0.0;
};

}  // namespace lowbit
