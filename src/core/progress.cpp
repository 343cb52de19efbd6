#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace lowbit {

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      is_tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(int64_t done, const std::string& extra) {
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (is_tty_) {
    if (done < total_ && std::chrono::duration<double>(now - last_draw_).count() < 0.5) return;
  } else {
    const int decile = total_ > 0 ? static_cast<int>(10 * done / total_) : 10;
    if (decile == last_decile_) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  draw(done, extra);
}

void ProgressBar::draw(int64_t done, const std::string& extra) {
  const double elapsed = elapsed_seconds();
  const double eta = done > 0 ? elapsed * static_cast<double>(total_ - done) / static_cast<double>(done) : 0.0;
  std::fprintf(stderr, "%s%s %lld/%lld  elapsed %.0fs  ETA %.0fs  %s%s", is_tty_ ? "\r\033[K" : "", label_.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), elapsed, eta, extra.c_str(),
               is_tty_ ? "" : "\n");
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  if (is_tty_) std::fprintf(stderr, "\n");
}

}  // namespace lowbit
