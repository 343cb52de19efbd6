// OpenBLAS at one thread for a scope, for code that runs its own threads each
// calling BLAS: OpenBLAS's workers would otherwise take these calls and then spin
// (sched_yield) for a long timeout while the caller's threads run on the same
// cores. The thread count is OpenBLAS's global setting, so it is restored on exit.
#pragma once

#include <cblas.h>

namespace lowbit {

class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : saved_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
  ~SingleThreadedBlas() { openblas_set_num_threads(saved_); }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_;
};

}  // namespace lowbit
