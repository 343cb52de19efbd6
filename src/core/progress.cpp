#include "core/progress.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace lowbit {

ProgressIo ProgressIo::standard() {
  ProgressIo io;
  io.now_seconds = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  io.write = [](const std::string& text) {
    std::fputs(text.c_str(), stderr);
    std::fflush(stderr);
  };
  io.tty = isatty(STDERR_FILENO) != 0;
  return io;
}

std::string format_duration(double seconds) {
  const int64_t s = std::llround(std::max(0.0, seconds));
  if (s <= 90) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
}

std::string format_progress(const std::string& label, int64_t done, int64_t total, double elapsed_seconds,
                            const std::string& extra, ProgressUnits units) {
  std::string line = label + " ";
  if (units == ProgressUnits::kCount) {
    line += fmt::format("{}/{}", done, total);
  } else {
    line += fmt::format("{}%", total > 0 ? 100 * done / total : 100);
  }
  line += "  elapsed " + format_duration(elapsed_seconds);
  if (done > 0 && done < total) {
    const double eta = elapsed_seconds * static_cast<double>(total - done) / static_cast<double>(done);
    line += "  ETA " + format_duration(eta);
  }
  if (!extra.empty()) line += "  " + extra;
  return line;
}

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled, ProgressUnits units, ProgressIo io)
    : label_(std::move(label)), total_(total), enabled_(enabled), units_(units), io_(std::move(io)) {
  if (enabled_) start_ = last_draw_ = io_.now_seconds();
}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::elapsed_seconds() const { return enabled_ ? io_.now_seconds() - start_ : 0.0; }

void ProgressBar::update(int64_t done, const std::string& extra) {
  if (!enabled_ || finished_) return;
  const double now = io_.now_seconds();
  if (io_.tty) {
    if (done < total_ && now - last_draw_ < 0.5) return;
  } else {
    const int decile = total_ > 0 ? static_cast<int>(10 * done / total_) : 10;
    if (decile == last_decile_ || (decile == 0 && done < total_)) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  draw(done, extra);
}

void ProgressBar::draw(int64_t done, const std::string& extra) {
  const std::string line = format_progress(label_, done, total_, elapsed_seconds(), extra, units_);
  io_.write(io_.tty ? "\r\033[K" + line : line + "\n");
  drawn_ = true;
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  if (io_.tty && drawn_) io_.write("\n");
}

}  // namespace lowbit
