#include "core/interrupt_cleanup.h"

#include <limits.h>
#include <signal.h>
#include <unistd.h>

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

void RemoveOnInterrupt::release() {
  if (slot_ < 0) return;
  g_state[slot_].store(kFree, std::memory_order_release);
  slot_ = -1;
}

}  // namespace lowbit
