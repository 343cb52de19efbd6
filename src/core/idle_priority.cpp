#include "core/idle_priority.h"

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace lowbit {

bool enter_idle_priority() {
#if defined(__linux__) && defined(SCHED_IDLE)
  sched_param param{};
  param.sched_priority = 0;  // the only priority SCHED_IDLE takes
  return pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) == 0;
#else
  return false;
#endif
}

}  // namespace lowbit
