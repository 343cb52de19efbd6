// Temporary outputs removed when the process is interrupted (SIGINT, SIGTERM).
//
// Outputs are written under a temporary name and renamed (atomic_file_writer.h),
// so a crash never leaves a file that looks complete; but an interrupted run
// would still leave OUT.tmp behind. While a RemoveOnInterrupt is alive its path
// is in a fixed table that the signal handler installed by
// install_interrupt_cleanup() reads: it unlinks every path in it (rmdir for a
// staging folder, after the files in it), then _exit(128 + signal), the shell's
// convention (130 for SIGINT, 143 for SIGTERM).
//
// This is the one piece of global mutable state in the library, and it has to be:
// a signal handler receives no argument, so what it removes must sit where it can
// reach it. The table is fixed-size static storage with lock-free atomic slot
// states, so the handler calls only async-signal-safe functions (unlink, rmdir,
// _exit) and never allocates or locks. A path that does not fit (more than
// kMaxPaths open at once, or longer than PATH_MAX) is not registered: it is then
// only removed by the normal error paths, as before.
//
// A NoteOnInterrupt adds one line the handler writes to stderr (write(2), also
// async-signal-safe) before it exits, e.g. how to continue the interrupted run.
#pragma once

#include <string>

namespace lowbit {

// Installs the SIGINT and SIGTERM handlers; main() calls it once.
void install_interrupt_cleanup();

class RemoveOnInterrupt {
 public:
  RemoveOnInterrupt() = default;
  explicit RemoveOnInterrupt(const std::string& path);
  RemoveOnInterrupt(RemoveOnInterrupt&& other) noexcept : slot_(other.slot_) { other.slot_ = -1; }
  RemoveOnInterrupt& operator=(RemoveOnInterrupt&& other) noexcept;
  RemoveOnInterrupt(const RemoveOnInterrupt&) = delete;
  RemoveOnInterrupt& operator=(const RemoveOnInterrupt&) = delete;
  ~RemoveOnInterrupt() { release(); }

  // Forgets the path (it was renamed into place or removed).
  void release();
  bool registered() const { return slot_ >= 0; }

 private:
  int slot_ = -1;
};

// While alive, the interrupt handler prints `line` and a newline to stderr.
// One note at a time: while another is alive this one is not registered (its
// line is not printed); lines longer than 511 bytes are cut.
class NoteOnInterrupt {
 public:
  explicit NoteOnInterrupt(const std::string& line);
  NoteOnInterrupt(const NoteOnInterrupt&) = delete;
  NoteOnInterrupt& operator=(const NoteOnInterrupt&) = delete;
  ~NoteOnInterrupt();

 private:
  bool registered_ = false;
};

}  // namespace lowbit
