// Persistent worker pool: threads are created once and reused for every
// parallel_for, so per-call cost is a hand-off, not a thread creation.
//
// Decode calls parallel_for a few hundred times per token (every linear layer,
// every attention head group), each call lasting tens of microseconds; a
// condition-variable wake-up costs about as much as the work. So the hand-off is
// an atomic generation counter that idle workers spin on (with pause) for a
// bounded number of iterations before they block in a futex wait
// (std::atomic::wait); the caller likewise spins, then blocks, until the
// workers' pending count reaches zero. A pool that sits idle costs its workers'
// spin budget once, then nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace lowbit {

class ThreadPool {
 public:
  // n_threads counts the calling thread: n_threads == 1 runs everything inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Splits [0, n) into contiguous ranges, one per thread, and calls
  // fn(begin, end, thread_index) on each; returns when all are done. Not
  // reentrant: one parallel_for at a time per pool, from one thread.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn);

  // Spin iterations (each one pause) before a waiting thread blocks: about
  // 0.1-0.5 ms, longer than the gap between two linears of a decode step.
  static constexpr int kSpinIterations = 1 << 12;

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  // The job: written by the caller before generation_ is published (release),
  // read by workers after they observe the new generation (acquire).
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_size_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // workers still running the current job
  std::atomic<bool> stopping_{false};
};

}  // namespace lowbit
