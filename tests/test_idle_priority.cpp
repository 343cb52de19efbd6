// enter_idle_priority: the calling thread, and only it, moves to SCHED_IDLE (Linux).
#include <gtest/gtest.h>

#include <thread>

#include "core/idle_priority.h"

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace lowbit {
namespace {

#if defined(__linux__) && defined(SCHED_IDLE)
int policy_of(pthread_t thread) {
  int policy = -1;
  sched_param param{};
  pthread_getschedparam(thread, &policy, &param);
  return policy;
}

TEST(IdlePriority, OnlyTheCallingThreadEntersSchedIdle) {
  const int before = policy_of(pthread_self());
  int inside = -1;
  bool entered = false;
  std::thread t([&] {
    entered = enter_idle_priority();
    inside = policy_of(pthread_self());
  });
  t.join();
  EXPECT_TRUE(entered);
  EXPECT_EQ(inside, SCHED_IDLE);
  EXPECT_EQ(policy_of(pthread_self()), before);
  EXPECT_NE(before, SCHED_IDLE);
}
#else
TEST(IdlePriority, OnlyTheCallingThreadEntersSchedIdle) { GTEST_SKIP() << "no SCHED_IDLE on this system"; }
#endif

}  // namespace
}  // namespace lowbit
