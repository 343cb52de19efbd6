#include "core/interrupt_cleanup.h"

#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace lowbit {
namespace {

constexpr int kMaxPaths = 64;
enum SlotState : int { kFree = 0, kFilling = 1, kArmed = 2 };
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs lock-free slot states");

// The table the handler reads (see the header for why it is global).
std::atomic<int> g_state[kMaxPaths];
char g_path[kMaxPaths][PATH_MAX];
// The one note (NoteOnInterrupt): kFree, kFilling, or kArmed with its line in g_note.
constexpr size_t kMaxNote = 512;
std::atomic<int> g_note_state{kFree};
char g_note[kMaxNote];
size_t g_note_bytes = 0;

extern "C" void remove_and_exit(int signal) {
  // Files first (unlink fails on a folder), then folders, innermost first after
  // their files are gone: two rmdir passes cover a staging folder with one level
  // of subfolders.
  for (int i = 0; i < kMaxPaths; ++i) {
    if (g_state[i].load(std::memory_order_acquire) == kArmed) unlink(g_path[i]);
  }
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = kMaxPaths - 1; i >= 0; --i) {
      if (g_state[i].load(std::memory_order_acquire) == kArmed) rmdir(g_path[i]);
    }
  }
  if (g_note_state.load(std::memory_order_acquire) == kArmed) {
    ssize_t written = write(STDERR_FILENO, g_note, g_note_bytes);
    (void)written;  // nothing to do about a failed write on the way out
  }
  _exit(128 + signal);
}

}  // namespace

void install_interrupt_cleanup() {
  struct sigaction action {};
  action.sa_handler = remove_and_exit;
  sigemptyset(&action.sa_mask);
  sigaddset(&action.sa_mask, SIGINT);
  sigaddset(&action.sa_mask, SIGTERM);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

RemoveOnInterrupt::RemoveOnInterrupt(const std::string& path) {
  if (path.size() >= PATH_MAX) return;
  for (int i = 0; i < kMaxPaths; ++i) {
    int expected = kFree;
    if (!g_state[i].compare_exchange_strong(expected, kFilling, std::memory_order_acq_rel)) continue;
    std::memcpy(g_path[i], path.c_str(), path.size() + 1);
    g_state[i].store(kArmed, std::memory_order_release);
    slot_ = i;
    return;
  }
}

RemoveOnInterrupt& RemoveOnInterrupt::operator=(RemoveOnInterrupt&& other) noexcept {
  if (this != &other) {
    release();
    slot_ = other.slot_;
    other.slot_ = -1;
  }
  return *this;
}

NoteOnInterrupt::NoteOnInterrupt(const std::string& line) {
  int expected = kFree;
  if (!g_note_state.compare_exchange_strong(expected, kFilling, std::memory_order_acq_rel)) return;
  const size_t n = std::min(line.size(), kMaxNote - 1);
  std::memcpy(g_note, line.data(), n);
  g_note[n] = '\n';
  g_note_bytes = n + 1;
  g_note_state.store(kArmed, std::memory_order_release);
  registered_ = true;
}

NoteOnInterrupt::~NoteOnInterrupt() {
  if (registered_) g_note_state.store(kFree, std::memory_order_release);
}

void RemoveOnInterrupt::release() {
  if (slot_ < 0) return;
  g_state[slot_].store(kFree, std::memory_order_release);
  slot_ = -1;
}

}  // namespace lowbit
